package test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

const vhdTemplate = acc.RequiredPlugins + `
variable "raw" { type = string }
variable "out" { type = string }
variable "in_place" {
  type    = bool
  default = false
}

source "file" "disk" {
  source = var.raw
  target = "${var.out}/disk.raw"
}

build {
  sources = ["source.file.disk"]

  post-processors {
    post-processor "osimage-vhd" {
      output    = var.in_place ? null : "${var.out}/{{ .BuildName }}.vhd"
      in_place  = var.in_place
      checksums = ["sha256"]
    }
    post-processor "manifest" {
      output = "${var.out}/manifest.json"
    }
  }
}
`

func vpcSize(t *testing.T, path string) int64 {
	t.Helper()
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	out := testutil.Run(t, qemuImg, "info", "-f", "vpc", "--output", "json", path)
	var qi struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
	}
	if err := json.Unmarshal([]byte(out), &qi); err != nil || qi.Format != "vpc" {
		t.Fatalf("qemu-img info %s: %v %s", path, err, out)
	}
	return qi.VirtualSize
}

func TestPackerBuildConvertsAFileBuilderDiskToVHD(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 40<<20+1234, map[int64][]byte{
		0:        bytes.Repeat([]byte{0xEB}, 512),
		20 << 20: bytes.Repeat([]byte("data"), 1<<18),
	})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "vhd.pkr.hcl", vhdTemplate)

	env.MustRun(t, dir, nil, "validate", "-var", "raw="+raw, "-var", "out="+out, ".")
	r := env.MustRun(t, dir, nil, "build", "-var", "raw="+raw, "-var", "out="+out, ".")

	vhdPath := filepath.Join(out, "disk.vhd")
	if got := vpcSize(t, vhdPath); got != 41<<20 {
		t.Fatalf("VHD virtual size %d, want %d", got, 41<<20)
	}
	if st, err := os.Stat(filepath.Join(out, "disk.raw")); err != nil || st.Size() != 40<<20+1234 {
		t.Fatalf("raw disk not kept for later post-processors: %v", err)
	}
	if !strings.Contains(r.Output(), "Wrote "+vhdPath) {
		t.Fatalf("packer output does not report the VHD:\n%s", r.Output())
	}
	// The chained manifest post-processor sees the VHD as an artifact file.
	m, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || !strings.Contains(string(m), "disk.vhd") {
		t.Fatalf("manifest does not list the VHD: %v\n%s", err, m)
	}

	// A second build must not overwrite the VHD without -force.
	before, _ := os.ReadFile(vhdPath)
	r2 := env.Run(t, dir, nil, "build", "-var", "raw="+raw, "-var", "out="+out, ".")
	if r2.Err == nil || !strings.Contains(r2.Output(), "already exists") {
		t.Fatalf("second build without -force: err=%v\n%s", r2.Err, r2.Output())
	}
	if after, _ := os.ReadFile(vhdPath); !bytes.Equal(before, after) {
		t.Fatal("existing VHD changed without -force")
	}
	// With -force it is replaced.
	env.MustRun(t, dir, nil, "build", "-force", "-var", "raw="+raw, "-var", "out="+out, ".")
}

func TestPackerBuildConvertsInPlace(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 30<<20+5, map[int64][]byte{0: []byte("boot")})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "vhd.pkr.hcl", vhdTemplate)
	env.MustRun(t, dir, nil, "build", "-var", "raw="+raw, "-var", "out="+out, "-var", "in_place=true", ".")
	disk := filepath.Join(out, "disk.raw")
	if got := vpcSize(t, disk); got != 31<<20 {
		t.Fatalf("virtual size %d, want %d", got, 31<<20)
	}
	if st, _ := os.Stat(disk); st.Size() != 31<<20+512 {
		t.Fatalf("in-place file size %d", st.Size())
	}
}

func TestPackerValidateRejectsBadVHDConfig(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	dir := t.TempDir()
	acc.WriteTemplate(t, dir, "bad.pkr.hcl", acc.RequiredPlugins+`
source "file" "disk" {
  content = "x"
  target  = "disk.raw"
}
build {
  sources = ["source.file.disk"]
  post-processor "osimage-vhd" {
    checksums = ["crc32"]
    in_place  = true
    output    = "x.vhd"
  }
}
`)
	r := env.Run(t, dir, nil, "validate", ".")
	if r.Err == nil {
		t.Fatal("validate accepted a bad config")
	}
	for _, want := range []string{`checksums[0] = "crc32"`, "output and in_place"} {
		if !strings.Contains(r.Output(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, r.Output())
		}
	}
}
