//go:build linux

package kiwi

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

func TestMountsUnderListsDeepestFirstAndMatchesWholeComponents(t *testing.T) {
	old := mountInfoPath
	t.Cleanup(func() { mountInfoPath = old })
	mountInfoPath = filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mountInfoPath, []byte(`22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:5 / /t/build/image-root/dev rw - devtmpfs udev rw
31 30 0:6 / /t/build/image-root/dev/pts rw - devpts devpts rw
32 22 0:7 / /t/build/image-root/proc rw - proc proc rw
33 22 0:8 / /t/with\040space rw - tmpfs tmpfs rw
34 22 0:9 / /tother rw - tmpfs tmpfs rw
`), 0o644)
	got, err := mountsUnder("/t")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " | ") != "/t/build/image-root/dev/pts | /t/build/image-root/dev | /t/build/image-root/proc | /t/with space" {
		t.Errorf("got %q", got)
	}
}

func TestUnmountAndRemoveOfAMissingDirIsANoOp(t *testing.T) {
	if err := UnmountAndRemove(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Fatal(err)
	}
}

// The case that matters: a KIWI killed mid-build leaves the host's /dev
// bind-mounted in its image root. Removing the target must not delete
// through the mount.
func TestUnmountAndRemoveDoesNotDeleteThroughBindMounts(t *testing.T) {
	testutil.NeedRoot(t, "bind mounts")
	host := t.TempDir()
	sentinel := filepath.Join(host, "device-node-stand-in")
	os.WriteFile(sentinel, []byte("keep me"), 0o644)
	target := filepath.Join(t.TempDir(), "kiwi")
	dev := filepath.Join(target, "build", "image-root", "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	err := unix.Mount(host, dev, "", unix.MS_BIND, "")
	testutil.Need(t, err == nil, fmt.Sprintf("bind mount not permitted here: %v", err), "run the tests as root outside a restricted container (CAP_SYS_ADMIN)")
	t.Cleanup(func() { unix.Unmount(dev, unix.MNT_DETACH) })

	if err := UnmountAndRemove(target); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(sentinel); err != nil || string(b) != "keep me" {
		t.Fatalf("the bind-mounted directory was emptied: %v", err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still there: %v", err)
	}
	if m, _ := mountsUnder(target); len(m) > 0 {
		t.Errorf("mounts left: %q", m)
	}
}

func TestUnmountAndRemoveDetachesLoopDevices(t *testing.T) {
	testutil.NeedLoop(t)
	target := t.TempDir()
	disk := filepath.Join(target, "disk.raw")
	f, _ := os.Create(disk)
	f.Truncate(4 << 20)
	f.Close()
	out, err := exec.Command(testutil.NeedTool(t, "losetup", "mount"), "-f", "--show", disk).Output()
	testutil.Need(t, err == nil, fmt.Sprintf("losetup -f --show %s: %v", disk, err), "run where free loop devices can be attached")
	dev := strings.TrimSpace(string(out))
	backing := filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file")
	t.Cleanup(func() {
		if _, err := os.Stat(backing); err == nil {
			exec.Command("losetup", "-d", dev).Run()
		}
	})
	if err := UnmountAndRemove(target); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(backing); err == nil {
		t.Errorf("%s still attached to %s", dev, b)
	}
}

func TestRemoveAllParallelRemovesATreeButNotWhatLinksPointTo(t *testing.T) {
	outside := t.TempDir()
	keep := filepath.Join(outside, "keep")
	os.WriteFile(keep, []byte("x"), 0o644)
	dir := filepath.Join(t.TempDir(), "tree")
	for i := 0; i < 50; i++ {
		d := filepath.Join(dir, "a", strings.Repeat("b/", i%5), "c")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "f"+strings.Repeat("x", i)), []byte("data"), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, "empty", "dirs"), 0o755)
	os.Symlink(outside, filepath.Join(dir, "a", "link-to-dir"))
	os.Symlink(keep, filepath.Join(dir, "link-to-file"))
	os.Symlink("/nonexistent", filepath.Join(dir, "dangling"))
	if err := removeAllParallel(dir, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", dir, err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "x" {
		t.Fatalf("a link target outside the tree was touched: %v", err)
	}
	if err := removeAllParallel(dir, 4); err != nil {
		t.Errorf("removing a missing dir: %v", err)
	}
}

func TestMountsOfDevicesMatchesLoopDevicesAndTheirPartitionsOnly(t *testing.T) {
	old := mountInfoPath
	t.Cleanup(func() { mountInfoPath = old })
	mountInfoPath = filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mountInfoPath, []byte(`22 1 0:21 / / rw - ext4 /dev/vda rw
42 27 259:1 / /var/tmp/kiwi_mount_manager.zcy4ww7_ rw,relatime shared:5 - ext4 /dev/loop0p1 rw
43 42 259:2 / /var/tmp/kiwi_mount_manager.zcy4ww7_/boot/efi rw,relatime - vfat /dev/loop0p2 rw
44 27 7:0 / /mnt/whole rw - ext4 /dev/loop0 rw
45 27 7:10 / /mnt/other rw - ext4 /dev/loop10p1 rw
46 27 7:1 / /mnt/not\040a\040partition rw - ext4 /dev/loop0px rw
`), 0o644)
	got, err := mountsOfDevices([]loop{{"loop0", "/t/disk.raw"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "/var/tmp/kiwi_mount_manager.zcy4ww7_/boot/efi | /var/tmp/kiwi_mount_manager.zcy4ww7_ | /mnt/whole"
	if strings.Join(got, " | ") != want {
		t.Errorf("got %q\nwant %s", strings.Join(got, " | "), want)
	}
	if got, _ := mountsOfDevices(nil); got != nil {
		t.Errorf("no loops: %q", got)
	}
}

// TestUnmountAndRemoveUnmountsTheDiskKiwiMountedOutsideIt is what a KIWI
// killed while it syncs the image root onto the disk leaves: the disk's
// partition mounted through a loop device under
// /var/tmp/kiwi_mount_manager.*, outside the target directory.
// UnmountAndRemove unmounts it, removes KIWI's empty mount point and detaches
// the loop device, so the disk's space is freed with the file.
func TestUnmountAndRemoveUnmountsTheDiskKiwiMountedOutsideIt(t *testing.T) {
	testutil.NeedLoop(t)
	sfdisk := testutil.NeedTool(t, "sfdisk", "fdisk")
	mkfs := testutil.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	target := t.TempDir()
	disk := filepath.Join(target, "disk.raw")
	f, _ := os.Create(disk)
	f.Truncate(16 << 20)
	f.Close()
	part := exec.Command(sfdisk, "-q", disk)
	part.Stdin = strings.NewReader("label: dos\n,,L\n") // one Linux partition, the whole disk
	if out, err := part.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	out, err := exec.Command(testutil.NeedTool(t, "losetup", "mount"), "-f", "-P", "--show", disk).Output()
	testutil.Need(t, err == nil, fmt.Sprintf("losetup -f -P --show %s: %v", disk, err), "run where free loop devices can be attached")
	dev := strings.TrimSpace(string(out))
	backing := filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file")
	mp := filepath.Join(t.TempDir(), "kiwi_mount_manager.test")
	t.Cleanup(func() {
		unix.Unmount(mp, unix.MNT_DETACH)
		if _, err := os.Stat(backing); err == nil {
			exec.Command("losetup", "-d", dev).Run()
		}
	})
	// As KIWI does: the kernel here does not always scan the partitions of
	// a loop device by itself, so map them with partx.
	exec.Command("partx", "--add", dev).Run()
	p1 := dev + "p1"
	for i := 0; i < 50; i++ { // the partition node may appear asynchronously
		if _, err := os.Stat(p1); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", p1).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", p1, err, out)
	}
	os.Mkdir(mp, 0o755)
	err = unix.Mount(p1, mp, "ext4", 0, "")
	testutil.Need(t, err == nil, fmt.Sprintf("mount %s: %v", p1, err), "run the tests as root outside a restricted container (CAP_SYS_ADMIN)")
	if err := UnmountAndRemove(target); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(info), mp) {
		t.Errorf("%s still mounted", mp)
	}
	if _, err := os.Stat(mp); !os.IsNotExist(err) {
		t.Errorf("KIWI's mount point %s left: %v", mp, err)
	}
	if b, err := os.ReadFile(backing); err == nil {
		t.Errorf("%s still attached to %s", dev, b)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target %s left: %v", target, err)
	}
}
