package artifact

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// fake is an artifact as another plugin (or Packer's RPC) presents it.
type fake struct {
	id    string
	files []string
	state map[string]interface{}
}

func (f fake) BuilderId() string             { return f.id }
func (f fake) Files() []string               { return f.files }
func (f fake) State(name string) interface{} { return f.state[name] }

func TestFromReadsOwnModelAcrossRPC(t *testing.T) {
	v := variant.Variant{Key: "k", Image: "vm", Arch: "aarch64", OCIArch: "arm64", AzureArch: "Arm64",
		Platform: "baremetal", HyperVGeneration: "V2", Firmware: "uefi", ReleaseVer: "4.0", Profiles: []string{"p"},
		Dimensions:   map[string]string{"arch": "aarch64", "cloud": "azure"},
		Capabilities: variant.Capabilities{"machine-bootable": true},
		Targets: []variant.Target{{Name: "acg", InterfaceType: variant.InterfaceAzureComputeGallery, Backend: "b",
			ResourceURN: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/x", ImageName: "vm-arm64"}},
		Unresolved: []string{"delivery.oci.tags[1]"}, Delivery: variant.Delivery(`{"oci":{"tags":["1",null]}}`)}
	a := &Artifact{Builder: "osimage.builder.disk", Variant: v,
		Outputs: []File{{Path: "/o/k.raw", Role: RoleDisk, Format: "raw"}, {Path: "/o/k.kernel", Role: RoleKernel}}}
	s, _ := a.State(StateKey).(string)
	got, err := From(fake{id: a.Builder, files: a.Files(), state: map[string]interface{}{StateKey: s}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Variant, a.Variant) || len(got.Outputs) != 2 || got.Outputs[1].Role != RoleKernel {
		t.Fatalf("got %+v", got)
	}
	if _, err := got.One(RoleInitrd); err == nil || !strings.Contains(err.Error(), "no initrd file") {
		t.Fatalf("One(initrd) err = %v", err)
	}
}

func TestFromInfersRolesOfForeignArtifacts(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         fake
		wantDisk   string
		wantFormat string
	}{
		{"file builder, any name", fake{id: FileBuilderID, files: []string{"/out/disk.bin"}}, "/out/disk.bin", ""},
		{"qemu builder raw", fake{id: QemuBuilderID, files: []string{"/out/packer-x", "/out/efivars.fd"},
			state: map[string]interface{}{"diskPaths": []interface{}{"/out/packer-x"}, "diskType": "raw"}}, "/out/packer-x", "raw"},
		{"qemu builder qcow2, []string state", fake{id: QemuBuilderID, files: []string{"/out/a.qcow2"},
			state: map[string]interface{}{"diskPaths": []string{"/out/a.qcow2"}, "diskType": "qcow2"}}, "/out/a.qcow2", "qcow2"},
		{"by extension among others", fake{id: "x", files: []string{"/o/readme.txt", "/o/d.img"}}, "/o/d.img", "raw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := From(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			d, err := a.One(RoleDisk)
			if err != nil {
				t.Fatal(err)
			}
			if d.Path != tc.wantDisk || d.Format != tc.wantFormat {
				t.Fatalf("disk %+v, want %s (%s)", d, tc.wantDisk, tc.wantFormat)
			}
		})
	}
	two, err := From(fake{id: "x", files: []string{"/a.raw", "/b.raw"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.One(RoleDisk); err == nil || !strings.Contains(err.Error(), "expected exactly one") {
		t.Fatalf("two disks: err = %v", err)
	}
}

func TestStateIsRPCSafeAndDestroyRemovesOnlyOwned(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine.vhd")
	theirs := filepath.Join(dir, "theirs.raw")
	os.WriteFile(mine, []byte("x"), 0o644)
	os.WriteFile(theirs, []byte("y"), 0o644)
	a := &Artifact{Builder: "b", Outputs: []File{{Path: theirs, Role: RoleDisk}, {Path: mine, Role: RoleVHD}},
		Extra: map[string]string{"vhd_path": mine}, Generated: map[string]string{"DiskPath": theirs}, Owned: []string{mine}}
	if a.State("vhd_path") != mine || a.State("nope") != nil {
		t.Fatal("Extra state not returned as strings")
	}
	var m Artifact
	if err := json.Unmarshal([]byte(a.State(StateKey).(string)), &m); err != nil || len(m.Outputs) != 2 {
		t.Fatalf("model state: %v", err)
	}
	if gd, ok := a.State("generated_data").(map[string]interface{}); !ok || gd["DiskPath"] != theirs {
		t.Fatalf("generated_data = %#v", a.State("generated_data"))
	}
	if c := a.Clone(); c.Destroy() != nil || !exists(mine) {
		t.Fatal("a clone destroyed files it does not own")
	}
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	if exists(mine) || !exists(theirs) {
		t.Fatal("Destroy must remove exactly the owned files")
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestOneOnAnArtifactWithoutFilesSaysItHoldsNoFiles(t *testing.T) {
	a := &Artifact{Builder: "b"}
	if _, err := a.One(RoleDisk); err == nil || !strings.Contains(err.Error(), "it holds no files") {
		t.Errorf("One(disk) of an empty artifact: %v, want it to say it holds no files", err)
	}
	a.Outputs = []File{{Path: "/o/k.log", Role: RoleLog}}
	if _, err := a.One(RoleDisk); err == nil || !strings.Contains(err.Error(), "it holds /o/k.log (log)") {
		t.Errorf("One(disk) of an artifact with a log: %v, want it to list the log", err)
	}
}

func TestIdIsTheSetIDOrElseTheFirstFile(t *testing.T) {
	a := &Artifact{}
	if a.Id() != "" {
		t.Errorf("Id of an empty artifact = %q, want empty", a.Id())
	}
	a.Outputs = []File{{Path: "/o/a.raw"}, {Path: "/o/b.raw"}}
	if a.Id() != "/o/a.raw" {
		t.Errorf("Id without ID = %q, want the first file", a.Id())
	}
	a.ID = "custom"
	if a.Id() != "custom" {
		t.Errorf("Id with ID = %q, want the ID", a.Id())
	}
}

func TestStringShowsTheVariantItsTargetsDeliveryAndFilesByRole(t *testing.T) {
	a := &Artifact{Variant: variant.Variant{Key: "vm-gen2", Arch: "x86_64", HyperVGeneration: "V2", ReleaseVer: "4.0",
		Targets:  []variant.Target{{Name: "acr", InterfaceType: variant.InterfaceOCIRegistry, ResourceURN: "reg.example", ImageName: "azl/vm"}},
		Delivery: variant.Delivery(`{"oci":{"tag":"1"}}`)},
		Outputs: []File{{Path: "/o/vm.raw", Role: RoleDisk, SHA256: "abc"}, {Path: "/o/vm.log", Role: RoleLog}}}
	want := "Variant vm-gen2 (x86_64, V2, 4.0)\n" +
		"  target   acr: oci-registry reg.example, image azl/vm\n" +
		`  delivery {"oci":{"tag":"1"}}` + "\n" +
		"  disk     /o/vm.raw (sha256 abc)\n" +
		"  log      /o/vm.log"
	if got := a.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	b := &Artifact{Variant: variant.Variant{Key: "k"}, Outputs: []File{{Path: "/o/x", Role: RoleDisk}}}
	if got, want := b.String(), "Variant k\n  disk     /o/x"; got != want {
		t.Errorf("String() of a variant without built-ins, targets or delivery = %q, want %q", got, want)
	}
	c := &Artifact{Outputs: []File{{Path: "/o/x", Role: RoleDisk}}}
	if got, want := c.String(), "Files\n  disk     /o/x"; got != want {
		t.Errorf("String() without a variant = %q, want %q", got, want)
	}
}

func TestDestroyReportsAPathItCouldNotRemove(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	os.WriteFile(mine, []byte("x"), 0o644)
	bad := dir + "/." // os.RemoveAll refuses a path ending in "."
	a := &Artifact{Owned: []string{bad, mine}}
	err := a.Destroy()
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Destroy = %v, want an error naming %s", err, bad)
	}
	if exists(mine) {
		t.Error("Destroy stopped at the first error instead of removing the rest")
	}
	if err := (&Artifact{Owned: []string{filepath.Join(dir, "gone")}}).Destroy(); err != nil {
		t.Errorf("Destroy of an already removed path = %v, want nil", err)
	}
}

func TestCloneCopiesExtraAndGeneratedWithoutSharingThem(t *testing.T) {
	a := &Artifact{Extra: map[string]string{"k": "v"}, Generated: map[string]string{"G": "g"}, Owned: []string{"/o"}}
	c := a.Clone()
	if c.Extra["k"] != "v" || c.Generated["G"] != "g" || c.Owned != nil {
		t.Fatalf("clone Extra %v Generated %v Owned %v, want Extra and Generated copied and nothing owned", c.Extra, c.Generated, c.Owned)
	}
	c.Extra["k"], c.Generated["G"] = "x", "x"
	if a.Extra["k"] != "v" || a.Generated["G"] != "g" {
		t.Error("the clone's maps are the original's")
	}
	if c := (&Artifact{}).Clone(); c.Extra != nil || c.Generated != nil {
		t.Errorf("clone of nil maps = %v %v, want nil", c.Extra, c.Generated)
	}
}

func TestFromKeepsTheQemuBuildersOtherFilesAndReadsOneDiskPathString(t *testing.T) {
	a, err := From(fake{id: QemuBuilderID, files: []string{"/out/packer-x", "/out/efivars.fd"},
		state: map[string]interface{}{"diskPaths": "/out/packer-x", "diskType": "raw"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []File{{Path: "/out/packer-x", Role: RoleDisk, Format: "raw"}, {Path: "/out/efivars.fd", Role: "other"}}
	if !reflect.DeepEqual(a.Outputs, want) {
		t.Errorf("outputs %+v, want %+v", a.Outputs, want)
	}
	b, err := From(fake{id: "x", files: []string{"/o/a.raw", "/o/notes"}, state: map[string]interface{}{"diskPaths": ""}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Outputs) != 2 || b.Outputs[0].Role != RoleDisk || b.Outputs[1].Role != "other" {
		t.Errorf("an empty diskPaths string is no disk list; outputs %+v, want roles by extension", b.Outputs)
	}
}
