package test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// variantTemplate is the short form the docs show: each variant of the
// matrix goes whole into osimage-disk, and on through osimage-vhd.
const variantTemplate = acc.RequiredPlugins + `
variable "tree" { type = string }
variable "raw" { type = string }
variable "out" { type = string }

data "osimage-matrix" "m" {
  config = var.tree
}

source "osimage-disk" "variant" {}

build {
  dynamic "source" {
    for_each = { for v in data.osimage-matrix.m.variants : v.key => v }
    labels   = ["osimage-disk.variant"]
    content {
      name             = source.key
      variant          = jsonencode(source.value)
      source_image     = var.raw
      output_directory = "${var.out}/${source.key}"
    }
  }
  post-processor "osimage-vhd" {}
}
`

// artifactStrings collects, per build, the artifact descriptions from
// packer's machine-readable output.
func artifactStrings(out string) map[string][]string {
	got := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, ",", 6)
		if len(f) == 6 && f[2] == "artifact" && f[4] == "string" {
			s := strings.NewReplacer(`\n`, "\n", "%!(PACKER_COMMA)", ",").Replace(f[5])
			got[f[1]] = append(got[f[1]], s)
		}
	}
	return got
}

func TestEachBuildCarriesItsOwnVariantThroughDiskAndVHD(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 21<<20, map[int64][]byte{0: bytes.Repeat([]byte{1}, 4096)})
	out := filepath.Join(dir, "out")
	acc.WriteTemplate(t, dir, "variant.pkr.hcl", variantTemplate)
	vars := []string{"-var", "tree=" + filepath.Join(env.Root, "test", "testdata", "variants", "images.toml"),
		"-var", "raw=" + raw, "-var", "out=" + out}

	r := env.MustRun(t, dir, nil, append(append([]string{"build", "-machine-readable"}, vars...), ".")...)
	arts := artifactStrings(r.Stdout)
	for key, want := range map[string][]string{
		"tiny-x86_64-virtualization": {"(x86_64, virtualization, 1.0.7)",
			"target   gallery: azure-compute-gallery /subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/galleries/tiny, image tiny-x64",
			"target   registry: oci-registry registry.example, image os/tiny-amd64",
			`delivery {"shared_gallery":{"image_definition":"tiny-x64","image_gallery":"tiny"}}`},
		"tiny-aarch64-virtualization": {"(aarch64, virtualization, uefi, 1.0.7)",
			"image tiny-arm64", "image os/tiny-arm64", `"image_definition":"tiny-arm64"`},
	} {
		list := arts["osimage-disk."+key]
		// The disk osimage-vhd kept, then osimage-vhd's artifact.
		if len(list) != 2 {
			t.Fatalf("build %s: %d artifacts, want the VHD and the disk:\n%q\n%s", key, len(list), list, r.Output())
		}
		for i, s := range list {
			for _, w := range want {
				if !strings.Contains(s, w) {
					t.Errorf("build %s, artifact %d lacks %q:\n%s", key, i, w, s)
				}
			}
			if !strings.Contains(s, "Variant "+key) {
				t.Errorf("build %s, artifact %d names another variant:\n%s", key, i, s)
			}
		}
		if !strings.Contains(list[1], "vhd      "+filepath.Join(out, key, key+".vhd")) {
			t.Errorf("build %s: the second artifact is not osimage-vhd's:\n%s", key, list[1])
		}
	}
	if s := strings.Join(arts["osimage-disk.tiny-x86_64-virtualization"], "\n"); strings.Contains(s, "arm64") {
		t.Errorf("the x86_64 build carries the aarch64 variant's data:\n%s", s)
	}
}

func TestAVariantNamingAKiwiDefinitionNeedsOnlyAnEmptyKiwiBlock(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	dir := t.TempDir()
	acc.WriteTemplate(t, dir, "kiwi.pkr.hcl", strings.Replace(variantTemplate,
		"      source_image     = var.raw\n", "      kiwi {}\n", 1))
	vars := []string{"-var", "tree=" + filepath.Join(env.Root, "test", "testdata", "variants", "images.toml"),
		"-var", "raw=unused", "-var", "out=" + dir}
	env.MustRun(t, dir, nil, append(append([]string{"validate", "--evaluate-datasources"}, vars...), ".")...)

	bad := strings.Replace(variantTemplate, "jsonencode(source.value)", `"{\"arch\": \"x86_64\"}"`, 1)
	acc.WriteTemplate(t, dir, "kiwi.pkr.hcl", bad)
	r := env.Run(t, dir, nil, append(append([]string{"validate", "--evaluate-datasources"}, vars...), ".")...)
	if r.Err == nil || !strings.Contains(r.Output(), `variant has no "key"`) {
		t.Fatalf("a variant without a key validated: err=%v\n%s", r.Err, r.Output())
	}
}
