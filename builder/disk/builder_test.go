package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/osimage/packer-plugin-osimage/builder/disk/disktest"
	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

func TestSourceImageBuildCopiesSparselyAndSplitsOutBootFiles(t *testing.T) {
	for _, mbr := range []bool{false, true} {
		t.Run("mbr="+strconv.FormatBool(mbr), func(t *testing.T) {
			d := disktest.Make(t, t.TempDir(), "src.raw", disktest.Options{MBR: mbr})
			a, ui, err := build(t, context.Background(), map[string]interface{}{
				"source_image": d.Path, "source_image_checksum": "sha256:" + sha256File(t, d.Path),
				"key": "vm-x86_64-baremetal", "platform": "baremetal", "hyperv_generation": "V2",
				"image": "vm", "image_name": "os/vm", "distro_version": "1.0",
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, ui.output())
			}
			dir := a.Extra["output_directory"]
			want := map[string]string{
				artifact.RoleDisk:   sha256File(t, d.Path),
				artifact.RoleKernel: sha256Bytes(d.Kernel),
				artifact.RoleInitrd: sha256Bytes(d.Initrd),
			}
			var roles []string
			for _, f := range a.Outputs {
				roles = append(roles, f.Role)
				if f.SHA256 != sha256File(t, f.Path) {
					t.Errorf("%s: artifact sha256 %s, file has %s", f.Path, f.SHA256, sha256File(t, f.Path))
				}
				if w, ok := want[f.Role]; ok && f.SHA256 != w {
					t.Errorf("%s: sha256 %s, want %s", f.Role, f.SHA256, w)
				}
				if filepath.Dir(f.Path) != dir || !strings.HasPrefix(filepath.Base(f.Path), "vm-x86_64-baremetal.") {
					t.Errorf("file %s not named after the key in %s", f.Path, dir)
				}
			}
			if got := strings.Join(roles, ","); got != "disk,kernel,initrd,rootfs" {
				t.Errorf("roles %s", got)
			}
			disk, _ := a.One(artifact.RoleDisk)
			st, _ := os.Stat(disk.Path)
			if st.Size() != d.Size || sparse.Allocated(st) > 16<<20 {
				t.Errorf("disk %d bytes, %d allocated: not a sparse copy", st.Size(), sparse.Allocated(st))
			}
			rootfs, _ := a.One(artifact.RoleRootfs)
			if rootfs.Format != "ext4" || rootfs.Size != d.RootSize {
				t.Errorf("rootfs %+v, want ext4 of %d bytes", rootfs, d.RootSize)
			}
			osRelease, err := bootfiles.ExtFS{Image: rootfs.Path}.ReadFile(context.Background(), "/etc/os-release")
			if err != nil || string(osRelease) != d.OSRelease {
				t.Errorf("rootfs /etc/os-release: %q, %v", osRelease, err)
			}
			if v := a.Variant; v.Key != "vm-x86_64-baremetal" || v.Platform != "baremetal" || v.HyperVGeneration != "V2" ||
				v.Firmware != "uefi" || v.Arch != hostArch() || v.Image != "vm" || v.ImageName != "os/vm" || v.DistroVersion != "1.0" {
				t.Errorf("variant %+v", v)
			}
			gd := a.State("generated_data").(map[string]interface{})
			if gd["DiskPath"] != disk.Path || gd["KernelPath"] != filepath.Join(dir, "vm-x86_64-baremetal.kernel") ||
				gd["DiskSHA256"] != disk.SHA256 || gd["Source"] != "source_image" || gd["OutputDir"] != dir {
				t.Errorf("generated data %v", gd)
			}
			for _, n := range generatedNames() {
				if _, ok := gd[n]; !ok {
					t.Errorf("generated data lacks %s", n)
				}
			}
			if !strings.Contains(ui.output(), "Source image sha256 verified") {
				t.Errorf("no verification message:\n%s", ui.output())
			}
			if !ui.progress {
				t.Error("the copy showed no progress")
			}
		})
	}
}

func TestSourceImageChecksumMismatchFailsAndLeavesNothing(t *testing.T) {
	src := someFile(t)
	out := filepath.Join(t.TempDir(), "out")
	wrong := strings.Repeat("ab", 32)
	_, ui, err := build(t, context.Background(), map[string]interface{}{
		"source_image": src, "source_image_checksum": wrong, "output_directory": out,
	})
	wantErr(t, err, "sha256 mismatch", src, wrong, sha256File(t, src))
	if exists(out) {
		t.Errorf("output directory %s left behind after a failed build\n%s", out, ui.output())
	}
}

func TestSourceImageChecksumFromAChecksumFile(t *testing.T) {
	src := someFile(t)
	sums := filepath.Join(t.TempDir(), "SHA256SUMS")
	os.WriteFile(sums, []byte(strings.Repeat("0", 64)+"  other.raw\n"+sha256File(t, src)+" *src.raw\n"), 0o644)
	a, _, err := build(t, context.Background(), map[string]interface{}{"source_image": src, "source_image_checksum": "file:" + sums})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := a.One(artifact.RoleDisk); d.SHA256 != sha256File(t, src) {
		t.Errorf("disk sha256 %s", d.SHA256)
	}
	// BSD format, sha512, no matching name but a single line.
	bsd := filepath.Join(t.TempDir(), "sums")
	out, _ := exec.Command("sha512sum", "--tag", src).Output()
	os.WriteFile(bsd, bytes.Replace(out, []byte("src.raw"), []byte("renamed.raw"), 1), 0o644)
	if _, _, err := build(t, context.Background(), map[string]interface{}{"source_image": src, "source_image_checksum": "file:" + bsd}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bsd, []byte("SHA512 (src.raw) = "+strings.Repeat("1", 128)+"\n"), 0o644)
	_, _, err = build(t, context.Background(), map[string]interface{}{"source_image": src, "source_image_checksum": "file:" + bsd})
	wantErr(t, err, "sha512 mismatch", bsd)
}

func TestQcow2SourceImageIsConvertedToRaw(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	d := disktest.Make(t, t.TempDir(), "src.raw", disktest.Options{})
	qcow := filepath.Join(t.TempDir(), "src.qcow2")
	testutil.Run(t, qemuImg, "convert", "-f", "raw", "-O", "qcow2", d.Path, qcow)
	a, ui, err := build(t, context.Background(), map[string]interface{}{
		"source_image": qcow, "source_image_checksum": "sha256:" + sha256File(t, qcow), "boot_files": "always",
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, ui.output())
	}
	disk, _ := a.One(artifact.RoleDisk)
	if disk.SHA256 != sha256File(t, d.Path) || disk.Format != "raw" {
		t.Errorf("converted disk %+v differs from the raw original", disk)
	}
	if k, _ := a.One(artifact.RoleKernel); k.SHA256 != sha256Bytes(d.Kernel) {
		t.Errorf("kernel %+v", k)
	}
	if !ui.progress {
		t.Error("the conversion showed no progress")
	}
	if m, _ := filepath.Glob(filepath.Join(a.Extra["output_directory"], ".*")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

func TestBootFilesFailureNamesTheDiskAndRemovesTheOutput(t *testing.T) {
	src := someFile(t) // no partition table
	out := filepath.Join(t.TempDir(), "out")
	_, _, err := build(t, context.Background(), map[string]interface{}{"source_image": src, "boot_files": "always", "output_directory": out})
	wantErr(t, err, "boot files", src[:0]+"no partition table")
	if exists(out) {
		t.Error("output directory left behind")
	}
}

func TestExistingOutputDirectoryIsAnErrorUnlessForced(t *testing.T) {
	src := someFile(t)
	out := filepath.Join(t.TempDir(), "out")
	os.Mkdir(out, 0o755)
	keep := filepath.Join(out, "keep")
	os.WriteFile(keep, []byte("x"), 0o644)
	_, _, err := build(t, context.Background(), map[string]interface{}{"source_image": src, "output_directory": out})
	wantErr(t, err, "output directory "+out+" already exists", "-force")
	if !exists(keep) {
		t.Fatal("an existing output directory was touched without -force")
	}
	a, _, err := build(t, context.Background(), map[string]interface{}{"source_image": src, "output_directory": out, "packer_force": true})
	if err != nil {
		t.Fatal(err)
	}
	if exists(keep) {
		t.Error("-force kept the old content")
	}
	if len(a.Owned) != 1 || a.Owned[0] != out {
		t.Errorf("owned %v", a.Owned)
	}
	if err := a.Destroy(); err != nil || exists(out) {
		t.Errorf("Destroy: %v, exists %v", err, exists(out))
	}
	if !exists(src) {
		t.Error("Destroy removed the source image")
	}
}

func TestKiwiBuildMovesResultsUnderStableNamesAndRemovesTheTarget(t *testing.T) {
	bin := fakeKiwi(t, "ok")
	argsFile := filepath.Join(t.TempDir(), "args")
	t.Setenv("FAKE_KIWI_ARGS", argsFile)
	desc := description(t, "vm.kiwi")
	a, ui, err := build(t, context.Background(), map[string]interface{}{
		"key": "vm-x86_64-virtualization",
		"kiwi": map[string]interface{}{
			"description": filepath.Join(desc, "vm.kiwi"), "kiwi_path": bin, "profiles": []string{"gen1"},
			"set_repository": map[string]interface{}{"source": "http://mirror/debian"},
		},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, ui.output())
	}
	dir := a.Extra["output_directory"]
	var got []string
	for _, f := range a.Outputs {
		got = append(got, f.Role+"="+filepath.Base(f.Path))
		if f.SHA256 != sha256File(t, f.Path) {
			t.Errorf("%s: sha256 %s, file has %s", f.Path, f.SHA256, sha256File(t, f.Path))
		}
	}
	want := "disk=vm-x86_64-virtualization.raw packages=vm-x86_64-virtualization.packages log=kiwi.log"
	if strings.Join(got, " ") != want {
		t.Errorf("outputs %s, want %s", strings.Join(got, " "), want)
	}
	if names := testutil.DirNames(dir); len(names) != 3 {
		t.Errorf("output directory holds %v; KIWI's target (image root, changes) should be gone", names)
	}
	args, _ := os.ReadFile(argsFile)
	wantArgs := "--profile=gen1\n--kiwi-file=vm.kiwi\nsystem\nbuild\n--description=" + desc + "\n--target-dir=" +
		filepath.Join(dir, "kiwi-target") + "\n--set-repo=http://mirror/debian\n"
	if string(args) != wantArgs {
		t.Errorf("kiwi-ng got:\n%s\nwant:\n%s", args, wantArgs)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "kiwi.log"))
	for _, s := range []string{"Loading XML description", "Processing: [######] 100%", "a warning on stderr"} {
		if !strings.Contains(string(log), s) || !strings.Contains(ui.output(), s) {
			t.Errorf("%q missing from kiwi.log or the UI", s)
		}
	}
	if a.Extra["kiwi_seconds"] == "" || a.Extra["builder_seconds"] == "" {
		t.Errorf("no timing in %v", a.Extra)
	}
	gd := a.State("generated_data").(map[string]interface{})
	if gd["Source"] != "kiwi" || gd["KernelPath"] != "" {
		t.Errorf("generated data %v", gd)
	}
}

func TestKiwiFailureReportsStatusLastLinesAndAKeptLog(t *testing.T) {
	bin := fakeKiwi(t, "fail")
	out := filepath.Join(t.TempDir(), "out")
	_, _, err := build(t, context.Background(), map[string]interface{}{
		"output_directory": out,
		"kiwi":             map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
	})
	var be *kiwi.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *kiwi.BuildError", err)
	}
	wantErr(t, err, "KIWI build of", "exit status 3", "KiwiCommandError: apt-get: exited with 100", "last 40 lines", "step 60", "full log:")
	if strings.Contains(err.Error(), "step 20\n") {
		t.Error("more than the last 40 lines")
	}
	if exists(out) {
		t.Error("output directory left after a failed build")
	}
	defer os.Remove(be.LogPath)
	log, rerr := os.ReadFile(be.LogPath)
	if rerr != nil || !strings.Contains(string(log), "step 1\n") || strings.HasPrefix(be.LogPath, out) {
		t.Errorf("log %s not kept outside the removed output directory: %v", be.LogPath, rerr)
	}
}

func TestKiwiUnknownProfileSurfacesKiwisOwnError(t *testing.T) {
	bin := fakeKiwi(t, "profile")
	_, _, err := build(t, context.Background(), map[string]interface{}{
		"kiwi": map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin, "profiles": []string{"nosuch"}},
	})
	wantErr(t, err, "KiwiProfileNotFound: profile nosuch not found", "profiles nosuch")
}

func TestKiwiWithoutAUsableResultFails(t *testing.T) {
	for mode, want := range map[string]error{"noresult": kiwi.ErrNoResult, "nodisk": kiwi.ErrNoDisk} {
		t.Run(mode, func(t *testing.T) {
			bin := fakeKiwi(t, mode)
			out := filepath.Join(t.TempDir(), "out")
			_, _, err := build(t, context.Background(), map[string]interface{}{
				"output_directory": out,
				"kiwi":             map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
			})
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
			wantErr(t, err, "kiwi-ng exited successfully but its result is unusable", "full log:")
			if exists(out) {
				t.Error("output directory left behind")
			}
		})
	}
}

func TestMissingKiwiNamesTheDebianPackagesBeforeWritingAnything(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	_, _, err := build(t, context.Background(), map[string]interface{}{
		"output_directory": out,
		"kiwi":             map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": "kiwi-ng-not-installed"},
	})
	if !errors.Is(err, kiwi.ErrNotInstalled) {
		t.Fatalf("err = %v", err)
	}
	wantErr(t, err, "apt-get install kiwi kiwi-systemdeps-disk-images")
	if exists(out) {
		t.Error("output directory created before the preflight checks")
	}
}

func TestKiwiForAnotherArchFailsBeforeBuilding(t *testing.T) {
	bin := fakeKiwi(t, "ok")
	other := map[string]string{"x86_64": "aarch64", "aarch64": "x86_64"}[hostArch()]
	_, _, err := build(t, context.Background(), map[string]interface{}{
		"arch": other,
		"kiwi": map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
	})
	wantErr(t, err, "arch is "+other, "KIWI does not cross-build")
}

func TestCancellingAKiwiBuildStopsKiwiAndRemovesTheOutput(t *testing.T) {
	bin := fakeKiwi(t, "hang")
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Setenv("FAKE_KIWI_PIDFILE", pidFile)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for !exists(pidFile) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	t0 := time.Now()
	_, _, err := build(t, ctx, map[string]interface{}{
		"output_directory": out,
		"kiwi":             map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	wantErr(t, err, "build cancelled", "partial output is removed")
	if d := time.Since(t0); d > 15*time.Second {
		t.Errorf("cancelling took %v", d)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(st), ") Z ") {
			t.Errorf("kiwi-ng's child %d still runs", pid)
		}
	}
	if exists(out) {
		t.Error("output directory left after cancelling")
	}
}

func TestKiwiKisFilesAreTheBootFiles(t *testing.T) {
	bin := fakeKiwi(t, "kis")
	a, ui, err := build(t, context.Background(), map[string]interface{}{
		"key": "bm", "platform": "baremetal",
		"kiwi": map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, ui.output())
	}
	k, err := a.One(artifact.RoleKernel)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(k.Path); string(b) != "kernel of fake kis" || filepath.Base(k.Path) != "bm.kernel" {
		t.Errorf("kernel %s: %q", k.Path, b)
	}
	if !strings.Contains(ui.output(), "come from KIWI's kis output") {
		t.Errorf("UI:\n%s", ui.output())
	}
	if _, err := a.One(artifact.RoleRootfs); err != nil {
		t.Error(err)
	}
	c, err := a.One(artifact.RoleCmdline)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(c.Path); string(b) != "root=UUID=0f1e2d3c console=ttyS0" || filepath.Base(c.Path) != "bm.cmdline" {
		t.Errorf("cmdline %s: %q", c.Path, b)
	}
	if gd := a.State("generated_data").(map[string]interface{}); gd["CmdlinePath"] != c.Path {
		t.Errorf("generated CmdlinePath %v, want %s", gd["CmdlinePath"], c.Path)
	}
	if !strings.Contains(ui.output(), "Kernel command line: root=UUID=0f1e2d3c console=ttyS0") {
		t.Errorf("UI:\n%s", ui.output())
	}
}

func TestKiwiFormatImageBecomesAVHDFile(t *testing.T) {
	bin := fakeKiwi(t, "vhd")
	a, _, err := build(t, context.Background(), map[string]interface{}{
		"key":  "vm",
		"kiwi": map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.One(artifact.RoleVHD)
	if err != nil || filepath.Base(v.Path) != "vm.vhdfixed" || v.Format != "vpc" {
		t.Errorf("vhd %+v: %v", v, err)
	}
	// The raw disk stays the one disk, for post-processors asking by role.
	if d, err := a.One(artifact.RoleDisk); err != nil || a.ID != d.Path {
		t.Errorf("disk %+v, id %s: %v", d, a.ID, err)
	}
}

func TestArtifactStateCarriesTheModelAndHCPMetadata(t *testing.T) {
	a, _, err := build(t, context.Background(), map[string]interface{}{
		"source_image": someFile(t), "key": "vm-x86_64-virtualization", "arch": "x86_64",
		"hyperv_generation": "V1", "image_name": "os/vm",
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.BuilderId() != BuilderID {
		t.Errorf("builder id %s", a.BuilderId())
	}
	s, _ := a.State(artifact.StateKey).(string)
	m, err := artifact.From(a)
	if err != nil || m.Variant.Key != "vm-x86_64-virtualization" || len(m.Outputs) != 1 || !json.Valid([]byte(s)) {
		t.Errorf("model %+v: %v", m, err)
	}
	img, ok := a.State(registryimage.ArtifactStateURI).(*registryimage.Image)
	if !ok {
		t.Fatalf("HCP metadata is %T", a.State(registryimage.ArtifactStateURI))
	}
	if err := img.Validate(); err != nil {
		t.Error(err)
	}
	d, _ := a.One(artifact.RoleDisk)
	if img.ImageID != "vm-x86_64-virtualization" || img.ProviderName != BuilderID || img.ProviderRegion != a.Extra["output_directory"] ||
		img.Labels["arch"] != "x86_64" || img.Labels["hyperv_generation"] != "V1" || img.Labels["firmware"] != "bios" ||
		img.Labels["platform"] != "virtualization" || img.Labels["image_name"] != "os/vm" || img.Labels["disk_sha256"] != d.SHA256 {
		t.Errorf("HCP image %+v", img)
	}
	if _, ok := img.Labels["distro_version"]; ok {
		t.Error("empty labels should be left out")
	}
}

func TestHostProblemsStopTheBuildBeforeTheOutputDirectoryExists(t *testing.T) {
	bin := fakeKiwi(t, "ok")
	for _, hostErr := range []error{kiwi.ErrNotRoot, kiwi.ErrNoLoopDevice} {
		kiwiPreflight = func(*kiwi.Runner, kiwi.Options) error { return fmt.Errorf("%w: as the host says", hostErr) }
		out := filepath.Join(t.TempDir(), "out")
		_, _, err := build(t, context.Background(), map[string]interface{}{
			"output_directory": out,
			"kiwi":             map[string]interface{}{"description": description(t, "config.xml"), "kiwi_path": bin},
		})
		if !errors.Is(err, hostErr) {
			t.Fatalf("err = %v, want %v", err, hostErr)
		}
		wantErr(t, err, "cannot run KIWI")
		if exists(out) {
			t.Errorf("output directory created although KIWI cannot run")
		}
	}
}
