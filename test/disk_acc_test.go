package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/builder/disk/disktest"
	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/partition"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/testutil/debmirror"
	"github.com/osimage/packer-plugin-osimage/test/acc"
	spdxjson "github.com/spdx/tools-golang/json"
)

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// artifactFiles reads the artifact listing packer prints at the end
// ("  ROLE     PATH (sha256 HEX)") into role -> [path, sha256].
func artifactFiles(out string) map[string][2]string {
	m := map[string][2]string{}
	re := regexp.MustCompile(`(?m)^\s+(\w+)\s+(/\S+) \(sha256 ([0-9a-f]{64})\)`)
	for _, s := range re.FindAllStringSubmatch(out, -1) {
		m[s[1]] = [2]string{s[2], s[3]}
	}
	return m
}

const diskSourceImageTemplate = acc.RequiredPlugins + `
variable "src" { type = string }
variable "out" { type = string }
variable "sum" { type = string }

source "osimage-disk" "metal" {
  source_image          = var.src
  source_image_checksum = var.sum
  key                   = "test-x86_64-baremetal"
  arch                  = "amd64"
  platform              = "virtualization"
  boot_files            = "always"
  output_directory      = var.out
}

build {
  sources = ["source.osimage-disk.metal"]
  post-processor "shell-local" {
    inline = ["echo generated: disk=${build.DiskPath} kernel=${build.KernelPath} arch=${build.Arch} sha=${build.DiskSHA256}"]
  }
}
`

// TestPackerBuildsARealKiwiDisk runs Debian's kiwi-ng through the packer
// binary on internal/kiwi/testdata/bookworm (3 to 6 minutes here), then reads the disk's partition table and /etc/os-release
// from its root filesystem, and checks the kernel, initramfs and rootfs
// extracted from it (the only real KIWI build in make test; internal/kiwi
// cancels one).
// It needs root, loop devices, kiwi and this machine's Debian mirror; `make
// test` runs it. OSIMAGE_SKIP_KIWI_BUILD=1 skips it (and fails it under
// OSIMAGE_REQUIRE_TOOLS=1, as a missing tool or privilege does).
func TestPackerBuildsARealKiwiDisk(t *testing.T) {
	testutil.Need(t, !testing.Short(), "real KIWI build skipped in -short mode (it takes minutes)", "run the tests without -short")
	testutil.Need(t, os.Getenv("OSIMAGE_SKIP_KIWI_BUILD") != "1", "real KIWI build skipped: OSIMAGE_SKIP_KIWI_BUILD=1", "unset OSIMAGE_SKIP_KIWI_BUILD")
	testutil.NeedLoop(t)
	testutil.NeedTool(t, "kiwi-ng", kiwi.DebianPackages)
	mirror, err := debmirror.URL()
	testutil.Need(t, err == nil, fmt.Sprintf("real KIWI build: %v", err), "run on Debian with an apt deb source (KIWI fetches the packages from it)")
	env := acc.Setup(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	desc := filepath.Join(env.Root, "internal", "kiwi", "testdata", "bookworm", "config.xml")
	acc.WriteTemplate(t, dir, "kiwi.pkr.hcl", acc.RequiredPlugins+`
source "osimage-disk" "bookworm" {
  key              = "bookworm-x86_64-virtualization"
  hyperv_generation = "V1"
  output_directory = "`+out+`"
  boot_files       = "always"
  kiwi {
    description = "`+desc+`"
    # Its own shared cache, so that this build runs side by side with the
    # other KIWI runs of make test instead of taking turns on the runner's
    # lock of /var/cache/kiwi (a warm cache saves little here: debootstrap
    # does not use it, and the mirror is fast).
    extra_global_args = ["--shared-cache-dir=`+filepath.Join(dir, "kiwi-cache")+`"]
    set_repository {
      source = "`+mirror+`"
    }
  }
}
build {
  sources = ["source.osimage-disk.bookworm"]
}
`)
	// Minutes of KIWI: the build starts now, before t.Parallel, so that it
	// runs from the start of the package's tests whatever order go test
	// gives the parallel tests; the checks below wait for it.
	t0 := time.Now()
	build := env.Start(t, dir, nil, "build", ".")
	t.Parallel()
	output, err := build.Wait()
	if err != nil {
		t.Fatalf("packer build with KIWI failed after %v: %v\n%s", time.Since(t0).Round(time.Second), err, output)
	}
	if m := regexp.MustCompile(`Build took [^\n]*`).FindString(output); m != "" {
		t.Log(m)
	}
	files := artifactFiles(output)
	disk := filepath.Join(out, "bookworm-x86_64-virtualization.raw")
	if files["disk"][0] != disk || files["packages"][0] == "" || files["log"][0] != filepath.Join(out, "kiwi.log") {
		t.Fatalf("artifact files %v\n%s", files, output)
	}
	if files["disk"][1] != fileSHA256(t, disk) {
		t.Errorf("disk sha256 in the artifact %s differs from the file's", files["disk"][1])
	}
	if names := testutil.DirNames(out); len(names) != 7 {
		t.Errorf("output directory holds %v, want the disk, the package list, kiwi.log, kernel, initrd, rootfs and the SBOM (KIWI's target removed)", names)
	}
	// Kernel, initramfs and rootfs extracted from the real disk.
	kernel, err := os.ReadFile(files["kernel"][0])
	if err != nil || len(kernel) < 0x206 || string(kernel[0x202:0x206]) != "HdrS" {
		t.Errorf("kernel %s lacks the x86 boot protocol magic HdrS at 0x202 (%v)", files["kernel"][0], err)
	}
	initrd, err := os.ReadFile(files["initrd"][0])
	if err != nil || !(len(initrd) > 6 && (string(initrd[:6]) == "070701" || initrd[0] == 0x1f && initrd[1] == 0x8b)) {
		t.Errorf("initramfs %s is not a cpio (early microcode) or gzip (%v)", files["initrd"][0], err)
	}
	if rel, err := (bootfiles.ExtFS{Image: files["rootfs"][0]}).ReadFile(context.Background(), "/etc/os-release"); err != nil ||
		!strings.Contains(string(rel), "VERSION_CODENAME=bookworm") {
		t.Errorf("/etc/os-release of the extracted rootfs: %q, %v", rel, err)
	}
	for _, role := range []string{"kernel", "initrd", "rootfs"} {
		if files[role][1] != fileSHA256(t, files[role][0]) {
			t.Errorf("%s sha256 in the artifact differs from the file's", role)
		}
	}
	pk, _ := os.ReadFile(files["packages"][0])
	if !strings.Contains(string(pk), "linux-image-") {
		t.Errorf("package list does not list a kernel")
	}
	// The SBOM: KIWI's list as SPDX, read back with the SPDX tools, with
	// the disk's os-release in the package URLs.
	sb, err := os.ReadFile(files["sbom"][0])
	if err != nil {
		t.Fatalf("no SBOM in the artifact (%v):\n%s", err, output)
	}
	doc, err := spdxjson.Read(bytes.NewReader(sb))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(strings.TrimSpace(string(pk)), "\n") + 1
	kernels := 0
	for _, p := range doc.Packages {
		if strings.HasPrefix(p.PackageName, "linux-image-") && len(p.PackageExternalReferences) == 1 &&
			strings.HasPrefix(p.PackageExternalReferences[0].Locator, "pkg:deb/debian/linux-image-") &&
			strings.HasSuffix(p.PackageExternalReferences[0].Locator, "&distro=debian-12") {
			kernels++
		}
	}
	if len(doc.Packages) != lines+1 || kernels == 0 || !strings.Contains(output, "packages from the KIWI package list") {
		t.Errorf("SBOM: %d packages (want the %d of KIWI's list and the OS), %d kernels with a debian-12 purl", len(doc.Packages), lines, kernels)
	}

	// The partition table KIWI's BIOS oem layout has: one Linux partition
	// from sector 2048 (see internal/kiwi's real build test).
	tab, err := partition.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Scheme != partition.MBR || len(tab.Partitions) != 1 || tab.Partitions[0].Start != 2048*512 || tab.Partitions[0].MBRType != 0x83 {
		t.Fatalf("partition table %s %v", tab.Scheme, tab.Partitions)
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root, err := tab.FindRoot(f, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if root.Filesystem.Type != "ext4" {
		t.Errorf("root filesystem %q, want ext4", root.Filesystem.Type)
	}
	osRelease, err := bootfiles.ExtFS{Image: disk, Offset: root.Partition.Start}.ReadFile(context.Background(), "/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(osRelease), "VERSION_CODENAME=bookworm") {
		t.Errorf("/etc/os-release of the built disk:\n%s", osRelease)
	}
	// The description's config.sh ran: the image does not carry the build
	// host's name, which debootstrap copies into /etc/hostname.
	hn, err := bootfiles.ExtFS{Image: disk, Offset: root.Partition.Start}.ReadFile(context.Background(), "/etc/hostname")
	if err != nil || strings.TrimSpace(string(hn)) != "localhost" {
		t.Errorf("/etc/hostname of the built disk: %q, %v; want localhost (config.sh)", hn, err)
	}
}

func TestPackerBuildsADiskFromASourceImageWithBootFiles(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "debugfs", "e2fsprogs")
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{Size: 256 << 20, Files: map[string]string{
		"var/lib/dpkg/status": "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nSource: bash\nVersion: 5.2.15-2+b7\n\n" +
			"Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n",
	}})
	out := filepath.Join(dir, "out")
	acc.WriteTemplate(t, dir, "disk.pkr.hcl", diskSourceImageTemplate)
	vars := []string{"-var", "src=" + d.Path, "-var", "out=" + out, "-var", "sum=sha256:" + fileSHA256(t, d.Path)}

	env.MustRun(t, dir, nil, append([]string{"validate"}, append(vars, ".")...)...)
	r := env.MustRun(t, dir, nil, append([]string{"build"}, append(vars, ".")...)...)

	files := artifactFiles(r.Output())
	want := map[string]string{
		"disk":   filepath.Join(out, "test-x86_64-baremetal.raw"),
		"kernel": filepath.Join(out, "test-x86_64-baremetal.kernel"),
		"initrd": filepath.Join(out, "test-x86_64-baremetal.initrd"),
		"rootfs": filepath.Join(out, "test-x86_64-baremetal.rootfs"),
		"sbom":   filepath.Join(out, "test-x86_64-baremetal.spdx.json"),
	}
	for role, path := range want {
		got, ok := files[role]
		if !ok || got[0] != path {
			t.Errorf("artifact %s = %v, want %s\n%s", role, got, path, r.Output())
			continue
		}
		if sum := fileSHA256(t, path); got[1] != sum {
			t.Errorf("%s: artifact says sha256 %s, the file has %s", path, got[1], sum)
		}
	}
	if len(files) != len(want) {
		t.Errorf("artifact files %v, want the 5 roles %v", files, want)
	}
	// The SBOM from the image's own dpkg database: the installed package
	// only, read back with the SPDX tools.
	if sb, err := os.ReadFile(want["sbom"]); err == nil {
		doc, err := spdxjson.Read(bytes.NewReader(sb))
		if err != nil || len(doc.Packages) != 2 || doc.Packages[1].PackageName != "bash" || doc.Packages[1].PackageVersion != "5.2.15-2+b7" {
			t.Errorf("SBOM %v: %s", err, sb)
		}
	}
	if files["disk"][1] != fileSHA256(t, d.Path) {
		t.Error("the copied disk differs from the source image")
	}
	kernel, _ := os.ReadFile(want["kernel"])
	initrd, _ := os.ReadFile(want["initrd"])
	if string(kernel) != string(d.Kernel) || string(initrd) != string(d.Initrd) {
		t.Error("kernel or initramfs differ from the files in the disk's /boot")
	}
	st, _ := os.Stat(want["disk"])
	if st.Size() != d.Size || sparse.Allocated(st) > 64<<20 {
		t.Errorf("disk: %d bytes, %d allocated; want a sparse copy of %d bytes", st.Size(), sparse.Allocated(st), d.Size)
	}
	osRelease, err := bootfiles.ExtFS{Image: want["rootfs"]}.ReadFile(context.Background(), "/etc/os-release")
	if err != nil || string(osRelease) != d.OSRelease {
		t.Errorf("rootfs /etc/os-release %q: %v", osRelease, err)
	}
	if !strings.Contains(r.Output(), "generated: disk="+want["disk"]+" kernel="+want["kernel"]+" arch=x86_64 sha="+files["disk"][1]) {
		t.Errorf("post-processor did not see the generated data:\n%s", r.Output())
	}

	// The output directory exists now: an error without -force, which must
	// leave it alone.
	r2 := env.Run(t, dir, nil, append([]string{"build"}, append(vars, ".")...)...)
	if r2.Err == nil || !strings.Contains(r2.Output(), "already exists") || !strings.Contains(r2.Output(), "-force") {
		t.Fatalf("second build without -force: %v\n%s", r2.Err, r2.Output())
	}
	if _, err := os.Stat(want["kernel"]); err != nil {
		t.Fatalf("a refused build touched the existing output: %v", err)
	}
	env.MustRun(t, dir, nil, append([]string{"build", "-force"}, append(vars, ".")...)...)

	// A wrong checksum fails and leaves no output directory.
	os.RemoveAll(out)
	bad := append([]string{"build"}, "-var", "src="+d.Path, "-var", "out="+out, "-var", "sum=sha256:"+strings.Repeat("0", 64), ".")
	r3 := env.Run(t, dir, nil, bad...)
	if r3.Err == nil || !strings.Contains(r3.Output(), "sha256 mismatch") {
		t.Fatalf("build with a wrong checksum: %v\n%s", r3.Err, r3.Output())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory left after a failed build: %v", err)
	}
}

func TestPackerValidateRejectsBadDiskConfigs(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	os.WriteFile(src, make([]byte, 4096), 0o644)
	desc := filepath.Join(dir, "desc")
	os.Mkdir(desc, 0o755)
	os.WriteFile(filepath.Join(desc, "config.xml"), []byte("<image/>"), 0o644)
	cases := map[string]struct {
		body string
		want []string
	}{
		"both": {`
  source_image = "src.raw"
  kiwi { description = "desc" }`, []string{"kiwi and source_image exclude each other"}},
		"neither": {`
  key = "x"`, []string{"no disk source", "kiwi {", "source_image"}},
		"bad-arch": {`
  source_image = "src.raw"
  arch         = "sparc"
  platform     = "cloud"`, []string{`arch = "sparc": unknown architecture; want x86_64`, `platform = "cloud"`}},
		"bad-kiwi": {`
  kiwi {
    description = "missing-dir"
    repository { source = "http://a,b" }
  }`, []string{"kiwi.description", "missing-dir", "kiwi.repository[0]"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sub := filepath.Join(dir, name)
			os.Mkdir(sub, 0o755)
			os.Symlink(src, filepath.Join(sub, "src.raw"))
			os.Symlink(desc, filepath.Join(sub, "desc"))
			acc.WriteTemplate(t, sub, "bad.pkr.hcl", acc.RequiredPlugins+`
source "osimage-disk" "bad" {`+tc.body+`
}
build {
  sources = ["source.osimage-disk.bad"]
}
`)
			r := env.Run(t, sub, nil, "validate", ".")
			if r.Err == nil {
				t.Fatalf("validate accepted a bad config:\n%s", r.Output())
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Output(), w) {
					t.Errorf("validate output lacks %q:\n%s", w, r.Output())
				}
			}
		})
	}
}

func TestDiskExamplesValidateAndTheSourceImageExampleBuilds(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "debugfs", "e2fsprogs")
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	ex := filepath.Join(env.Root, "example", "disk")
	out := filepath.Join(dir, "out")
	vars := []string{"-var", "source_image=" + d.Path, "-var", "output_directory=" + out}
	env.MustRun(t, dir, nil, "validate", filepath.Join(ex, "kiwi"))
	env.MustRun(t, dir, nil, append(append([]string{"validate"}, vars...), filepath.Join(ex, "source-image"))...)
	r := env.MustRun(t, dir, nil, append(append([]string{"build"}, vars...), filepath.Join(ex, "source-image"))...)
	for _, name := range []string{"example-x86_64-baremetal.raw", "example-x86_64-baremetal.kernel", "example-x86_64-baremetal.initrd", "example-x86_64-baremetal.rootfs", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("example output: %v\n%s", err, r.Output())
		}
	}
}

// TestCtrlCDuringAKiwiBuildStopsKiwiAndRemovesTheOutput interrupts packer
// the way Ctrl-C does (SIGINT to its process group: packer and the plugin,
// which leaves it to packer to cancel the build) while a fake kiwi-ng and
// its child run, and checks that both are gone and nothing is left.
func TestCtrlCDuringAKiwiBuildStopsKiwiAndRemovesTheOutput(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	// The builder checks for root and loop devices before it starts kiwi-ng.
	testutil.NeedLoop(t)
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join(env.Root, "builder", "disk", "testdata", "fake-kiwi-ng"))
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "kiwi-ng")
	if err := os.WriteFile(fake, script, 0o755); err != nil {
		t.Fatal(err)
	}
	desc := filepath.Join(dir, "desc")
	os.Mkdir(desc, 0o755)
	os.WriteFile(filepath.Join(desc, "config.xml"), []byte("<image/>"), 0o644)
	out := filepath.Join(dir, "out")
	pidFile := filepath.Join(dir, "child.pid")
	acc.WriteTemplate(t, dir, "kiwi.pkr.hcl", acc.RequiredPlugins+`
source "osimage-disk" "cancel" {
  output_directory = "`+out+`"
  kiwi {
    description = "desc"
    kiwi_path   = "`+fake+`"
  }
}
build {
  sources = ["source.osimage-disk.cancel"]
}
`)
	p := env.Start(t, dir, []string{"FAKE_KIWI_MODE=hang", "FAKE_KIWI_PIDFILE=" + pidFile}, "build", ".")
	p.WaitUntil(t, "kiwi-ng started", 60*time.Second, func() bool { _, err := os.Stat(pidFile); return err == nil })
	b, _ := os.ReadFile(pidFile)
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Logf("packer exited %v after Ctrl-C", p.Interrupt(t, 60*time.Second).Round(time.Millisecond))
	if !strings.Contains(p.Output(), "cancelled") {
		t.Errorf("output does not say the build was cancelled:\n%s", p.Output())
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil && !strings.Contains(string(st), ") Z ") {
		t.Errorf("kiwi-ng's child %d outlived the cancelled build: %s", child, st)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory left after Ctrl-C: %v\n%s", err, p.Output())
	}
}
