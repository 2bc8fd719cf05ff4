package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// TestMatrixDrivesOneBuildPerVariant runs example/azurelinux: validate with
// and without evaluating datasources, then a build in which every variant
// of the matrix becomes its own build and writes its plan.
func TestMatrixDrivesOneBuildPerVariant(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	example := filepath.Join(env.Root, "example", "azurelinux")
	out := t.TempDir()
	vars := []string{"-var", "output_dir=" + out}

	env.MustRun(t, env.Root, nil, append(append([]string{"validate", "--evaluate-datasources"}, vars...), example)...)
	// Without evaluating datasources the matrix is unknown, so for_each
	// cannot expand: Packer refuses, as documented for every data-driven
	// dynamic block. The docs tell users to pass --evaluate-datasources.
	if r := env.Run(t, env.Root, nil, append(append([]string{"validate"}, vars...), example)...); r.Err == nil || !strings.Contains(r.Output(), "must be known") {
		t.Fatalf("plain validate: err=%v\n%s", r.Err, r.Output())
	}
	r := env.MustRun(t, env.Root, nil, append(append([]string{"build"}, vars...), example)...)

	want := []string{
		"container-base-aarch64-virtualization",
		"container-base-x86_64-virtualization",
		"vm-base-aarch64-virtualization-gen2",
		"vm-base-x86_64-virtualization-gen1",
		"vm-base-x86_64-virtualization-gen2",
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("builds wrote %v\nwant %v\n%s", got, want, r.Output())
	}
	for _, k := range want {
		// Each variant is its own build: the dynamic block names the
		// source file.variant after the variant's key.
		if want := "Build 'file." + k + "' finished"; !strings.Contains(r.Output(), want) {
			t.Errorf("packer output lacks %q: no build named after variant %s", want, k)
		}
	}
	// The plan is the variant as `variant = jsonencode(source.value)` hands
	// it to osimage-disk: read it the way every component does.
	b, _ := os.ReadFile(filepath.Join(out, "vm-base-aarch64-virtualization-gen2.json"))
	plan, err := variant.Parse("plan", string(b))
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, b)
	}
	if plan.Arch != "aarch64" || plan.AzureArch != "Arm64" || plan.HyperVGeneration != "V2" || plan.Firmware != "uefi" ||
		filepath.Base(plan.DefinitionPath) != "vm-base.kiwi" || len(plan.Targets) != 1 ||
		plan.Targets[0].Name != "azl4-acg" || plan.Targets[0].ImageName != "AzureLinux4-arm64" ||
		plan.DeliveryString("marketplace.sku_prefix") != "azure-linux-4-arm64" {
		t.Fatalf("aarch64 plan: %+v\n%s", plan, b)
	}
}

// TestMatrixOnlyFilterAndErrors checks -var only=... narrowing and that a
// filter that removes everything fails with a message naming it.
func TestMatrixOnlyFilterAndErrors(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	example := filepath.Join(env.Root, "example", "azurelinux")
	out := t.TempDir()
	env.MustRun(t, env.Root, nil, "build", "-var", "output_dir="+out, "-var", `only=["vm-base","arm64"]`, example)
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(files) != 1 || filepath.Base(files[0]) != "vm-base-aarch64-virtualization-gen2.json" {
		t.Fatalf("only [vm-base, arm64] built %v", files)
	}
	r := env.Run(t, env.Root, nil, "validate", "--evaluate-datasources", "-var", `only=["riscv64"]`, example)
	if r.Err == nil || !strings.Contains(r.Output(), "riscv64") {
		t.Fatalf("a filter matching nothing: err=%v\n%s", r.Err, r.Output())
	}
}

// TestMatrixJSONOneLiner runs the documented one-liner that writes the CI
// job matrix.
func TestMatrixJSONOneLiner(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	out := filepath.Join(t.TempDir(), "matrix.json")
	env.MustRun(t, env.Root, nil, "build", "-var", "config="+filepath.Join(env.Root, "example", "azurelinux", "azldev.toml"),
		"-var", "output="+out, "-var", `skip=["container-base"]`, filepath.Join(env.Root, "example", "matrix-json"))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Include []struct {
			Key string `json:"key"`
		} `json:"include"`
	}
	if err := json.Unmarshal(b, &m); err != nil || len(m.Include) != 3 {
		t.Fatalf("matrix.json: %v, %d entries (want the 3 vm-base variants)\n%s", err, len(m.Include), b)
	}
	for _, e := range m.Include {
		if !strings.HasPrefix(e.Key, "vm-base-") {
			t.Fatalf("skip=container-base left %s", e.Key)
		}
	}
}

// TestDebianPipelineExampleValidates checks the template `make demo` runs:
// the matrix feeds osimage-disk sources, one per variant of this machine's
// architecture, chained into osimage-vhd.
func TestDebianPipelineExampleValidates(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	r := env.MustRun(t, env.Root, nil, "validate", "--evaluate-datasources", filepath.Join(env.Root, "example", "debian"))
	if !strings.Contains(r.Output(), "The configuration is valid") {
		t.Fatalf("validate: %s", r.Output())
	}
	out := filepath.Join(t.TempDir(), "m.json")
	env.MustRun(t, env.Root, nil, "build", "-var", "config="+filepath.Join(env.Root, "example", "debian", "images.toml"),
		"-var", "output="+out, filepath.Join(env.Root, "example", "matrix-json"))
	b, _ := os.ReadFile(out)
	for _, k := range []string{"debian-vm-x86_64-virtualization-gen1", "debian-vm-aarch64-virtualization-gen2"} {
		if !strings.Contains(string(b), `"key":"`+k+`"`) {
			t.Errorf("matrix lacks %s: %s", k, b)
		}
	}
	if strings.Contains(string(b), "x86_64-virtualization-gen2") {
		t.Errorf("the exclude rule did not drop x86_64 gen2: %s", b)
	}
}
