package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// The guides' templates validate with the real packer, with the data
// sources evaluated, and the guides' relative links lead somewhere.
func TestTheGuidesTemplatesValidate(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "sgdisk", "gdisk")
	dir := t.TempDir()
	disks := filepath.Join(dir, "disks")
	testutil.Run(t, filepath.Join(env.Root, "example", "quickstart", "make-disks.sh"), disks)
	gallery := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/almalinux_ci"
	for _, tc := range []struct {
		example string
		vars    []string
	}{
		{"guides/almalinux", []string{"version=9.6", "image=" + filepath.Join(disks, "disk-x86_64.raw"), "gallery_id=" + gallery}},
		{"guides/almalinux", []string{"version=10.0", "type=arm64-64k", "image=" + filepath.Join(disks, "disk-aarch64.raw"), "gallery_id=" + gallery}},
		{"alpine-style", []string{"disks=" + disks, "registry=127.0.0.1:5000", "state=" + filepath.Join(dir, "alpine-state"),
			`gallery={subscription="s",resource_group="rg",name="g",location="eastus"}`, "storage_connection_string=UseDevelopmentStorage=true"}},
		{"ci", []string{"disks=" + disks, "registry=127.0.0.1:5000", "state=" + filepath.Join(dir, "ci-state")}},
	} {
		args := []string{"validate", "--evaluate-datasources"}
		for _, v := range tc.vars {
			args = append(args, "-var", v)
		}
		env.MustRun(t, dir, nil, append(args, filepath.Join(env.Root, "example", filepath.FromSlash(tc.example)))...)
	}
	if r := env.Run(t, dir, nil, "validate", "-var", "version=9.6", "-var", "type=arm", "-var", "image=x", "-var", "gallery_id=g",
		filepath.Join(env.Root, "example", "guides", "almalinux")); r.Err == nil || !strings.Contains(r.Output(), "default, arm64 or arm64-64k") {
		t.Errorf("a bad -t: %v\n%s", r.Err, r.Output())
	}

	guides, _ := filepath.Glob(filepath.Join(env.Root, "docs", "guides", "*.md"))
	if len(guides) < 4 {
		t.Fatalf("guides: %v", guides)
	}
	link := regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`)
	for _, g := range guides {
		b, _ := os.ReadFile(g)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			if _, err := os.Stat(filepath.Join(filepath.Dir(g), filepath.FromSlash(m[1]))); err != nil {
				t.Errorf("%s links %s: %v", filepath.Base(g), m[1], err)
			}
		}
	}
}
