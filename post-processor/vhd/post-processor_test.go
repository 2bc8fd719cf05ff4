package vhd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

func configure(t *testing.T, raw map[string]interface{}) *PostProcessor {
	t.Helper()
	p := &PostProcessor{}
	raw["packer_build_name"] = "b1"
	raw["packer_builder_type"] = "osimage-disk"
	if err := p.Configure(raw); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPostProcessConvertsQcow2ThroughQemuImg(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "src.raw"), 8<<20, map[int64][]byte{1 << 20: bytes.Repeat([]byte{7}, 4096)})
	qcow := filepath.Join(dir, "disk.qcow2")
	testutil.Run(t, qemuImg, "convert", "-f", "raw", "-O", "qcow2", raw, qcow)
	in := &artifact.Artifact{Builder: artifact.QemuBuilderID, Variant: variant.Variant{Key: "v1", Arch: "x86_64"},
		Outputs: []artifact.File{{Path: qcow, Role: artifact.RoleDisk}}}
	p := configure(t, map[string]interface{}{"output": filepath.Join(dir, "{{ .Key }}-{{ .Arch }}.vhd")})
	out, keep, force, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if !keep || force {
		t.Fatalf("keep=%v force=%v, want the input kept but overridable", keep, force)
	}
	want := filepath.Join(dir, "v1-x86_64.vhd")
	if out.State("vhd_path") != want || out.State("vhd_virtual_size") != "8388608" {
		t.Fatalf("state: %v %v", out.State("vhd_path"), out.State("vhd_virtual_size"))
	}
	testutil.Run(t, qemuImg, "compare", "-f", "vpc", "-F", "raw", want, raw)
	// The temporary raw conversion is gone.
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestPostProcessInPlaceCannotBeDestroyedWithItsInput(t *testing.T) {
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "d.raw"), 3<<20, map[int64][]byte{0: []byte("x")})
	in := &artifact.Artifact{Builder: "packer.file", Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	p := configure(t, map[string]interface{}{"in_place": true, "checksums": []string{"SHA256"}})
	out, keep, force, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if !keep || !force {
		t.Fatal("in place, the input is the output: keep must be forced")
	}
	a, _ := artifact.From(out)
	if v, err := a.One(artifact.RoleVHD); err != nil || v.Path != raw || len(v.SHA256) != 64 {
		t.Fatalf("vhd entry %+v, %v", v, err)
	}
	if st, _ := os.Stat(raw); st.Size() != 3<<20+512 {
		t.Fatalf("size %d", st.Size())
	}
}

func TestPostProcessNamesMissingQemuImg(t *testing.T) {
	dir := t.TempDir()
	qcow := filepath.Join(dir, "d.qcow2")
	os.WriteFile(qcow, append([]byte("QFI\xfb"), make([]byte, 1020)...), 0o644)
	in := &artifact.Artifact{Builder: "x", Outputs: []artifact.File{{Path: qcow, Role: artifact.RoleDisk}}}
	p := configure(t, map[string]interface{}{"qemu_img_path": "/nonexistent/qemu-img"})
	_, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err == nil || !strings.Contains(err.Error(), "qemu-utils") {
		t.Fatalf("err = %v, want it to name the package to install", err)
	}
}

func TestPostProcessRejectsArtifactWithoutDisk(t *testing.T) {
	in := &artifact.Artifact{Builder: "x", Outputs: []artifact.File{{Path: "/k", Role: artifact.RoleKernel}}}
	_, _, _, err := configure(t, map[string]interface{}{}).PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err == nil || !strings.Contains(err.Error(), "no vhd file") && !strings.Contains(err.Error(), "holds no files") {
		t.Fatalf("err = %v", err)
	}
}

func TestTheVariantAttributeGivesAFileBuilderArtifactItsVariant(t *testing.T) {
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "d.raw"), 3<<20, map[int64][]byte{0: []byte("x")})
	in := &artifact.Artifact{Builder: artifact.FileBuilderID, Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	p := configure(t, map[string]interface{}{
		"variant": `{"key":"vm-aarch64","arch":"arm64","release_ver":"4.1","delivery":"{\"vhd\":{\"name\":\"n\"}}",` +
			`"targets":[{"name":"acg","interface_type":"azure-compute-gallery","resource_urn":"/g","image_name":"def"}]}`,
		"output": filepath.Join(dir, "{{ .Key }}-{{ .ReleaseVer }}-{{ .AzureArch }}.vhd"),
	})
	out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.From(out)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Variant
	if v.Key != "vm-aarch64" || v.Arch != "aarch64" || v.AzureArch != "Arm64" || v.DeliveryString("vhd.name") != "n" ||
		len(v.TargetsOf(variant.InterfaceAzureComputeGallery)) != 1 {
		t.Errorf("variant after osimage-vhd: %+v", v)
	}
	if vhdFile, _ := m.One(artifact.RoleVHD); vhdFile.Path != filepath.Join(dir, "vm-aarch64-4.1-Arm64.vhd") {
		t.Errorf("output %s not rendered from the variant", vhdFile.Path)
	}
}

func TestAMalformedVariantAttributeIsAConfigureError(t *testing.T) {
	var p PostProcessor
	err := p.Configure(map[string]interface{}{"variant": `{"arch":"x86_64"}`})
	if err == nil || !strings.Contains(err.Error(), "variant") || !strings.Contains(err.Error(), `no "key"`) {
		t.Fatalf("err = %v", err)
	}
}

// The same disk (by its recorded sha256) at the same SOURCE_DATE_EPOCH
// gives the same VHD bytes, so a rebuild of identical content is reused
// downstream; another disk another footer id.
func TestTheSameDiskGivesTheSameVHDBytes(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1764460800")
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "src.raw"), 4<<20, map[int64][]byte{0: bytes.Repeat([]byte{9}, 512)})
	run := func(sha, name string) []byte {
		in := &artifact.Artifact{Builder: artifact.QemuBuilderID, Variant: variant.Variant{Key: "v1", Arch: "x86_64"},
			Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk, SHA256: sha}}}
		p := configure(t, map[string]interface{}{"output": filepath.Join(dir, name)})
		if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := run("aa", "a.vhd"), run("aa", "b.vhd")
	if !bytes.Equal(a, b) {
		t.Fatal("two conversions of the same disk differ")
	}
	c := run("ab", "c.vhd")
	if bytes.Equal(a[len(a)-512:], c[len(c)-512:]) {
		t.Fatal("another disk, the same footer")
	}
	// 2025-11-30T00:00:00Z is 817776000 = 0x30be4580 s after 2000-01-01.
	if ts := a[len(a)-512+24 : len(a)-512+28]; ts[0] != 0x30 || ts[1] != 0xbe || ts[2] != 0x45 || ts[3] != 0x80 {
		t.Fatalf("footer timestamp %x, want SOURCE_DATE_EPOCH's", ts)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "soon")
	in := &artifact.Artifact{Builder: artifact.QemuBuilderID, Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	p := configure(t, map[string]interface{}{"output": filepath.Join(dir, "d.vhd")})
	if _, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in); err == nil || !strings.Contains(err.Error(), `SOURCE_DATE_EPOCH="soon"`) {
		t.Fatalf("a bad SOURCE_DATE_EPOCH: %v", err)
	}
}

// With a release state in which the variant is published, the VHD is not
// made (the input, whose disk may not even be here, passes through).
func TestNoVHDIsMadeWhenPublishIsNotPending(t *testing.T) {
	in := &artifact.Artifact{Builder: "osimage.builder.state",
		Variant: variant.Variant{Key: "v1", Arch: "x86_64", State: t.TempDir(), Pending: []string{"release"}}}
	p := configure(t, map[string]interface{}{})
	ui := packersdk.TestUi(t)
	out, keep, _, err := p.PostProcess(context.Background(), ui, in)
	if err != nil || !keep || out.(*artifact.Artifact).Variant.Key != "v1" || len(out.Files()) != 0 {
		t.Fatalf("%v %v %v", out, keep, err)
	}
	in.Variant.Pending = []string{"publish", "release"}
	if _, _, _, err := p.PostProcess(context.Background(), ui, in); err == nil || !strings.Contains(err.Error(), "holds no files") {
		t.Fatalf("publish pending without a disk: %v", err)
	}
}

// With a key, the VHD gets a detached signature the real cosign verifies
// with the public key; a bad key or password fails at configure time.
func TestTheVHDIsSignedSoCosignVerifiesIt(t *testing.T) {
	cosign := testutil.NeedBuilt(t, "cosign")
	dir := t.TempDir()
	env := append(os.Environ(), "HOME="+dir, "COSIGN_PASSWORD=pw")
	gen := exec.Command(cosign, "generate-key-pair")
	gen.Dir, gen.Env = dir, env
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	raw := testutil.SparseFile(t, filepath.Join(dir, "src.raw"), 4<<20, map[int64][]byte{0: bytes.Repeat([]byte{3}, 4096)})
	in := &artifact.Artifact{Builder: artifact.QemuBuilderID, Variant: variant.Variant{Key: "v1", Arch: "x86_64"},
		Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	t.Setenv("COSIGN_PASSWORD", "pw")
	p := configure(t, map[string]interface{}{"output": filepath.Join(dir, "v1.vhd"), "signing_key": filepath.Join(dir, "cosign.key")})
	out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	sigs := out.(*artifact.Artifact).ByRole(artifact.RoleSig)
	if len(sigs) != 1 || sigs[0].Path != filepath.Join(dir, "v1.vhd.sig") {
		t.Fatalf("signature files %v", sigs)
	}
	verify := exec.Command(cosign, "verify-blob", "--key", "cosign.pub", "--signature", "v1.vhd.sig", "--insecure-ignore-tlog=true", "v1.vhd")
	verify.Dir, verify.Env = dir, env
	if b, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("cosign verify-blob: %v\n%s", err, b)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "v1.vhd"), os.O_WRONLY, 0)
	f.WriteAt([]byte{9}, 1<<20)
	f.Close()
	verify = exec.Command(cosign, "verify-blob", "--key", "cosign.pub", "--signature", "v1.vhd.sig", "--insecure-ignore-tlog=true", "v1.vhd")
	verify.Dir, verify.Env = dir, env
	if b, err := verify.CombinedOutput(); err == nil {
		t.Fatalf("cosign verified a changed VHD:\n%s", b)
	}

	t.Setenv("COSIGN_PASSWORD", "wrong")
	bad := &PostProcessor{}
	err = bad.Configure(map[string]interface{}{"signing_key": filepath.Join(dir, "cosign.key")})
	if err == nil || !strings.Contains(err.Error(), "wrong password") || strings.Contains(err.Error(), "wrong\"") {
		t.Fatalf("a wrong password: %v", err)
	}
	if err := (&PostProcessor{}).Configure(map[string]interface{}{"signing_key_env": "NO_SUCH_KEY_VAR"}); err == nil || !strings.Contains(err.Error(), "NO_SUCH_KEY_VAR is not set") {
		t.Fatalf("a missing key variable: %v", err)
	}
}
