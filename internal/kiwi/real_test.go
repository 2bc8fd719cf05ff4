package kiwi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/partition"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/testutil/debmirror"
)

// TestRealBuild runs Debian's kiwi-ng on testdata/bookworm, the smallest
// description that builds on these machines, then reads the disk's
// partition table and extracts kernel, initramfs and rootfs from it the
// way the builder does for baremetal variants. It takes minutes and needs
// root, loop devices, kiwi and the Debian mirror; make test runs it (and
// fails it under OSIMAGE_REQUIRE_TOOLS=1 where those are missing):
//
//	go test -run TestRealBuild -timeout 30m -v ./internal/kiwi/
//
// It runs in parallel with TestRealBuildCancel. OSIMAGE_KIWI_KEEP=DIR keeps the output (disk, log) in DIR instead of a
// temporary directory.
func TestRealBuild(t *testing.T) {
	r := realRunner(t)
	t.Parallel()
	mirror, err := debmirror.URL()
	if err != nil {
		t.Fatal(err)
	}
	desc, err := filepath.Abs("testdata/bookworm")
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("OSIMAGE_KIWI_KEEP")
	if out == "" {
		out = t.TempDir()
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(out, "kiwi")
	if _, err := os.Stat(target); err == nil {
		t.Fatalf("%s exists; remove it first (KIWI refuses to reuse an image root)", target)
	}

	r.WrapperDir = filepath.Join(out, "bin")
	r.LogPath = filepath.Join(out, "kiwi.log")
	r.Output = func(line string) {
		if testing.Verbose() && strings.Contains(line, " | ") && !strings.Contains(line, "--> ") {
			t.Log(line)
		}
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Minute))
		defer cancel()
	}

	t0 := time.Now()
	res, err := r.Build(ctx, kiwi.Options{
		Description: desc,
		TargetDir:   target,
		SetRepo:     &kiwi.Repo{Source: mirror},
		GlobalArgs:  ownCache(t, out),
	})
	wall := time.Since(t0)
	if err != nil {
		t.Fatalf("after %v: %v", wall.Round(time.Second), err)
	}
	st, err := os.Stat(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KIWI build from %s took %v; disk %s: %d bytes, %d allocated; result keys %v",
		mirror, wall.Round(time.Second), res.Disk, st.Size(), sparse.Allocated(st), res.Keys())
	if res.Packages == "" {
		t.Error("no image_packages in the result")
	} else if pk, _ := os.ReadFile(res.Packages); !strings.Contains(string(pk), "linux-image-") {
		t.Errorf("package list %s does not list a kernel", res.Packages)
	}

	tab, err := partition.ReadFile(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tab.Partitions {
		t.Logf("partition table %s: %s", tab.Scheme, p)
	}
	f, err := os.Open(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root, err := tab.FindRoot(f, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("root: %s (%s, label %q)", root.Reason, root.Filesystem.Type, root.Filesystem.Label)
	if root.Filesystem.Type != "ext4" {
		t.Errorf("root filesystem is %q, want ext4", root.Filesystem.Type)
	}
	// KIWI's BIOS oem layout: one Linux partition from sector 2048. (KIWI
	// logs "setting active flag", but 9.24 leaves the boot flag unset;
	// grub in the MBR does not need it.)
	if tab.Scheme != partition.MBR || len(tab.Partitions) != 1 || tab.Partitions[0].Start != 2048*512 ||
		tab.Partitions[0].MBRType != 0x83 {
		t.Errorf("unexpected partition table: %s %v", tab.Scheme, tab.Partitions)
	}

	// Kernel, initramfs and rootfs, as for a baremetal variant without kis.
	t1 := time.Now()
	bf, err := bootfiles.Extract(ctx, bootfiles.Options{
		Disk: res.Disk, Arch: "x86_64",
		Rootfs: filepath.Join(out, "rootfs.img"), Kernel: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initrd.img"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("extraction took %v: kernel %s", time.Since(t1).Round(time.Millisecond), bf.KernelVersion)
	for _, f := range []bootfiles.File{bf.Kernel, bf.Initrd, bf.Rootfs} {
		t.Logf("  %s <- %s: %d bytes, sha256 %s", f.Path, f.Source, f.Size, f.SHA256)
	}
	kernel, err := os.ReadFile(bf.Kernel.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(kernel) < 0x206 || string(kernel[0x202:0x206]) != "HdrS" {
		t.Error("kernel lacks the x86 boot protocol magic HdrS at 0x202")
	}
	initrd, err := os.ReadFile(bf.Initrd.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !(len(initrd) > 6 && (string(initrd[:6]) == "070701" || initrd[0] == 0x1f && initrd[1] == 0x8b)) {
		t.Errorf("initramfs starts with %q, want a cpio (early microcode) or gzip", initrd[:min(6, len(initrd))])
	}
	osRelease, err := bootfiles.ExtFS{Image: bf.Rootfs.Path}.ReadFile(ctx, "/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(osRelease), "VERSION_CODENAME=bookworm") {
		t.Errorf("/etc/os-release of the rootfs:\n%s", osRelease)
	}
	// The description's config.sh ran: the image does not carry the build
	// host's name (debootstrap copies /etc/hostname).
	hn, err := bootfiles.ExtFS{Image: bf.Rootfs.Path}.ReadFile(ctx, "/etc/hostname")
	if err != nil || strings.TrimSpace(string(hn)) != "localhost" {
		t.Errorf("/etc/hostname of the rootfs: %q, %v; want localhost (config.sh)", hn, err)
	}
}

// realRunner returns a runner for a real KIWI build, or skips the test
// (fails it under OSIMAGE_REQUIRE_TOOLS=1) saying what is missing: -short,
// root, loop devices or kiwi-ng.
func realRunner(t *testing.T) *kiwi.Runner {
	t.Helper()
	testutil.Need(t, !testing.Short(), "real KIWI build skipped in -short mode (it takes minutes)", "run the tests without -short")
	testutil.NeedLoop(t)
	r := &kiwi.Runner{}
	_, err := r.LookPath()
	testutil.Need(t, err == nil, fmt.Sprintf("real KIWI build: %v", err), "apt-get install "+kiwi.DebianPackages)
	return r
}

// ownCache gives a build its own KIWI shared cache directory under dir.
// KIWI bind-mounts the shared cache (default /var/cache/kiwi) into the image
// root, and apt-get there takes its lock: two builds sharing it at once
// (these two tests, the acceptance test's build in another package, any
// other KIWI build on the machine) fail with "Could not get lock
// /var/cache/kiwi/apt-get/lists/lock".
func ownCache(t *testing.T, dir string) []string {
	t.Helper()
	c := filepath.Join(dir, "kiwi-cache")
	if err := os.MkdirAll(c, 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"--shared-cache-dir=" + c}
}

// TestRealBuildCancel cancels a real build while apt runs in KIWI's chroot
// and checks that nothing is left: no process, no mount, no loop device,
// and UnmountAndRemove removes the partial output. It needs what TestRealBuild
// needs and runs in parallel with it.
func TestRealBuildCancel(t *testing.T) {
	r := realRunner(t)
	t.Parallel()
	mirror, err := debmirror.URL()
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := filepath.Abs("testdata/bookworm")
	out := t.TempDir()
	target := filepath.Join(out, "kiwi")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt string
	stopped := make(chan time.Time, 1)
	r.WrapperDir = filepath.Join(out, "bin")
	r.LogPath = filepath.Join(out, "kiwi.log")
	r.Output = func(line string) {
		if cancelledAt == "" && strings.Contains(line, "Installing system (chroot)") {
			cancelledAt = line
			time.AfterFunc(15*time.Second, func() { stopped <- time.Now(); cancel() })
		}
	}
	t0 := time.Now()
	_, err = r.Build(ctx, kiwi.Options{Description: desc, TargetDir: target, SetRepo: &kiwi.Repo{Source: mirror}, GlobalArgs: ownCache(t, out)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	stoppedAt := <-stopped
	t.Logf("cancelled 15 s after %q; Run returned %v after the cancel (%v in all): %v",
		cancelledAt, time.Since(stoppedAt).Round(time.Millisecond), time.Since(t0).Round(time.Second), err)

	log, _ := os.ReadFile(r.LogPath)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	t.Logf("last log lines:\n%s", strings.Join(lines[max(0, len(lines)-8):], "\n"))

	// No process may still live in (chroot) or work on the target.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		for _, l := range []string{"root", "cwd"} {
			if dest, err := os.Readlink(filepath.Join(p, l)); err == nil && strings.HasPrefix(dest, target) {
				cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
				t.Errorf("process %s has its %s in %s: %q", filepath.Base(p), l, dest, cmd)
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, target) {
			t.Logf("mount left by the cancelled KIWI (UnmountAndRemove handles it): %s", l)
		}
	}
	if err := kiwi.UnmountAndRemove(target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still there: %v", err)
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Fatalf("host /dev damaged: %v", err)
	}
}
