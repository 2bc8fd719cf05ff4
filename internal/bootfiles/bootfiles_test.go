package bootfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/partition"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

const MiB = 1 << 20

// debianPackage names the Debian package of each host tool the tests run.
var debianPackage = map[string]string{
	"sgdisk": "gdisk", "sfdisk": "fdisk", "debugfs": "e2fsprogs",
	"mkfs.ext2": "e2fsprogs", "mkfs.ext3": "e2fsprogs", "mkfs.ext4": "e2fsprogs",
	"mkfs.vfat": "dosfstools", "mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs",
}

// need skips the test when a host tool is missing, and fails it under
// OSIMAGE_REQUIRE_TOOLS=1, naming the Debian package to install.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testutil.NeedTool(t, tool, debianPackage[tool])
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// tree is a directory layout for mkfs.ext4 -d: path -> content, or
// "->target" for a symlink; a path ending in "/" is an empty directory.
type tree map[string]string

func (tr tree) write(t *testing.T) string { return testutil.WriteTree(t, tr) }

// mkfs makes a filesystem image of size bytes from a tree.
func mkfs(t *testing.T, tr tree, size int64, args ...string) string {
	t.Helper()
	need(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "fs.img")
	f, _ := os.Create(img)
	f.Truncate(size)
	f.Close()
	run(t, "mkfs.ext4", append(append([]string{"-q", "-d", tr.write(t)}, args...), img)...)
	return img
}

// place writes a filesystem image into the disk at partition p.
func place(t *testing.T, disk, img string, p partition.Partition) {
	t.Helper()
	run(t, "dd", "if="+img, "of="+disk, "bs=1M", "seek="+strconv.FormatInt(p.Start, 10), "oflag=seek_bytes", "conv=notrunc,sparse", "status=none")
}

// gptDisk makes a GPT disk with sgdisk and returns it with its table.
func gptDisk(t *testing.T, size int64, args ...string) (string, *partition.Table) {
	t.Helper()
	need(t, "sgdisk")
	disk := filepath.Join(t.TempDir(), "disk.raw")
	f, _ := os.Create(disk)
	f.Truncate(size)
	f.Close()
	run(t, "sgdisk", append(args, disk)...)
	tab, err := partition.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	return disk, tab
}

// blob is deterministic content with a zero run (a hole in sparse copies).
func blob(seed int64, n int) string {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	for i := n / 3; i < n/3+n/4; i++ {
		b[i] = 0
	}
	return string(b)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func outputs(t *testing.T, disk string) Options {
	d := t.TempDir()
	return Options{Disk: disk, Arch: "x86_64",
		Rootfs: filepath.Join(d, "rootfs.img"), Kernel: filepath.Join(d, "vmlinuz"), Initrd: filepath.Join(d, "initrd.img")}
}

// checkFile asserts an output holds exactly want and its File says so.
func checkFile(t *testing.T, f File, want []byte) {
	t.Helper()
	got, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the original %d bytes", f.Path, len(got), len(want))
	}
	if f.Size != int64(len(want)) || f.SHA256 != sha(want) {
		t.Errorf("%s: File says %d bytes sha256 %s, want %d %s", f.Path, f.Size, f.SHA256, len(want), sha(want))
	}
}

func TestExtractFromAGPTDiskWithDebianLayout(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	kernel, initrd := blob(1, 3*MiB+123), blob(2, 5*MiB+7)
	tr := tree{
		"boot/vmlinuz-6.1.0-test":    kernel,
		"boot/initrd.img-6.1.0-test": initrd,
		"boot/config-6.1.0-test":     "CONFIG_X=y\n",
		"boot/vmlinuz-5.10.0-old":    "older kernel",
		"boot/initrd.img-5.10.0-old": "older initrd",
		"vmlinuz":                    "->boot/vmlinuz-6.1.0-test",
		"initrd.img":                 "->boot/initrd.img-6.1.0-test",
		"etc/os-release":             "PRETTY_NAME=\"test\"\n",
	}
	img := mkfs(t, tr, 48*MiB, "-L", "ROOT")
	disk, tab := gptDisk(t, 64*MiB, "-n1:0:+1M", "-t1:ef02", "-n2:0:0", "-t2:8304", "-c2:p.lxroot")
	place(t, disk, img, tab.Partitions[1])

	opts := outputs(t, disk)
	res, err := Extract(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Root.Partition.Number != 2 || res.Boot != nil || res.KernelVersion != "6.1.0-test" {
		t.Errorf("root %s, boot %v, version %q", res.Root.Reason, res.Boot, res.KernelVersion)
	}
	checkFile(t, res.Kernel, []byte(kernel))
	checkFile(t, res.Initrd, []byte(initrd))
	if res.Kernel.Source != "partition 2:/boot/vmlinuz-6.1.0-test" || res.Initrd.Source != "partition 2:/boot/initrd.img-6.1.0-test" {
		t.Errorf("sources %q %q", res.Kernel.Source, res.Initrd.Source)
	}
	// The rootfs is the whole partition: the filesystem image plus the
	// zeros after it.
	part := make([]byte, tab.Partitions[1].Size)
	fsBytes, _ := os.ReadFile(img)
	copy(part, fsBytes)
	checkFile(t, res.Rootfs, part)
	// And it is a filesystem debugfs reads.
	osr, err := ExtFS{Image: res.Rootfs.Path}.ReadFile(context.Background(), "/etc/os-release")
	if err != nil || string(osr) != tr["etc/os-release"] {
		t.Errorf("os-release from the rootfs: %q, %v", osr, err)
	}
}

func TestExtractTakesTheHighestVersionWithoutLinksFedoraStyle(t *testing.T) {
	t.Parallel()
	need(t, "debugfs", "sfdisk")
	tr := tree{
		"boot/vmlinuz-6.9.0-1.fc40.x86_64":        "6.9",
		"boot/initramfs-6.9.0-1.fc40.x86_64.img":  "initramfs 6.9",
		"boot/vmlinuz-6.10.0-1.fc40.x86_64":       "6.10",
		"boot/initramfs-6.10.0-1.fc40.x86_64.img": "initramfs 6.10",
		"boot/.vmlinuz-6.10.0-1.fc40.x86_64.hmac": "hmac",
		"boot/vmlinuz-0-rescue-abcdef":            "rescue",
		"boot/initramfs-0-rescue-abcdef.img":      "rescue initramfs",
	}
	img := mkfs(t, tr, 16*MiB, "-L", "root")
	disk := filepath.Join(t.TempDir(), "mbr.raw")
	f, _ := os.Create(disk)
	f.Truncate(32 * MiB)
	f.Close()
	cmd := exec.Command("sfdisk", "--quiet", disk)
	cmd.Stdin = strings.NewReader("label: dos\nstart=2048, type=83, bootable\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	tab, _ := partition.ReadFile(disk)
	place(t, disk, img, tab.Partitions[0])
	res, err := Extract(context.Background(), outputs(t, disk))
	if err != nil {
		t.Fatal(err)
	}
	if res.KernelVersion != "6.10.0-1.fc40.x86_64" {
		t.Errorf("version %q, want the highest (6.10 > 6.9)", res.KernelVersion)
	}
	checkFile(t, res.Initrd, []byte("initramfs 6.10"))
}

func TestExtractReadsASeparateBootPartition(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	kernel, initrd := blob(3, MiB), blob(4, 2*MiB)
	boot := mkfs(t, tree{
		"vmlinuz-6.1.0-test":    kernel,
		"initrd.img-6.1.0-test": initrd,
		"grub/grub.cfg":         "menuentry {}\n",
	}, 16*MiB, "-L", "BOOT")
	root := mkfs(t, tree{"boot/": "", "etc/hostname": "x\n", "vmlinuz": "->boot/vmlinuz-6.1.0-test"}, 16*MiB, "-L", "ROOT")
	disk, tab := gptDisk(t, 48*MiB, "-n1:0:+1M", "-t1:ef02", "-c1:p.legacy", "-n2:0:+16M", "-t2:8300", "-c2:p.lxboot", "-n3:0:0", "-t3:8304", "-c3:p.lxroot")
	place(t, disk, boot, tab.Partitions[1])
	place(t, disk, root, tab.Partitions[2])
	res, err := Extract(context.Background(), outputs(t, disk))
	if err != nil {
		t.Fatal(err)
	}
	if res.Root.Partition.Number != 3 || res.Boot == nil || res.Boot.Partition.Number != 2 {
		t.Fatalf("root %d, boot %+v", res.Root.Partition.Number, res.Boot)
	}
	checkFile(t, res.Kernel, []byte(kernel))
	checkFile(t, res.Initrd, []byte(initrd))
	if res.Kernel.Source != "partition 2:/vmlinuz-6.1.0-test" {
		t.Errorf("source %q", res.Kernel.Source)
	}
}

func TestExtractFailsClearlyAndLeavesNothing(t *testing.T) {
	t.Parallel()
	need(t, "debugfs", "mkfs.xfs")
	noKernel := mkfs(t, tree{"boot/grub/grub.cfg": "", "etc/hostname": "x\n"}, 16*MiB)
	noInitrd := mkfs(t, tree{"boot/vmlinuz-6.1": "k"}, 16*MiB)

	xfsImg := filepath.Join(t.TempDir(), "xfs.img")
	f, _ := os.Create(xfsImg)
	f.Truncate(300 * MiB)
	f.Close()
	run(t, "mkfs.xfs", "-q", xfsImg)

	tests := []struct {
		name string
		img  string
		want string
	}{
		{"no kernel", noKernel, "partition 1:/boot: no kernel (no vmlinuz-*, vmlinux-*, Image-*, zImage-*, kernel-* file among grub); and there is no separate boot partition"},
		{"no initramfs", noInitrd, "no initramfs for version 6.1"},
		{"xfs root", xfsImg, "holds xfs; only ext2/3/4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk, tab := gptDisk(t, 320*MiB, "-n1:0:0", "-t1:8304")
			place(t, disk, tt.img, tab.Partitions[0])
			opts := outputs(t, disk)
			_, err := Extract(context.Background(), opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, p := range []string{opts.Rootfs, opts.Kernel, opts.Initrd} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (%v)", p, err)
				}
			}
		})
	}
}

func TestExtractRejectsBadOptionsAndDisks(t *testing.T) {
	t.Parallel()
	if _, err := Extract(context.Background(), Options{Disk: "d"}); err == nil {
		t.Error("missing outputs accepted")
	}
	if _, err := Extract(context.Background(), Options{Disk: "d", Rootfs: "a", Kernel: "a", Initrd: "b"}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("same output twice: %v", err)
	}
	if _, err := Extract(context.Background(), Options{Disk: "d", Rootfs: "d", Kernel: "a", Initrd: "b"}); err == nil || !strings.Contains(err.Error(), "disk itself") {
		t.Errorf("output = disk: %v", err)
	}
	blank := filepath.Join(t.TempDir(), "blank.raw")
	os.WriteFile(blank, make([]byte, MiB), 0o644)
	if _, err := Extract(context.Background(), outputs(t, blank)); !errors.Is(err, partition.ErrNoTable) {
		t.Errorf("blank disk: %v", err)
	}
}

func TestExtractStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	img := mkfs(t, tree{"boot/vmlinuz-1": "k", "boot/initrd.img-1": "i"}, 16*MiB)
	disk, tab := gptDisk(t, 32*MiB, "-n1:0:0", "-t1:8304")
	place(t, disk, img, tab.Partitions[0])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	opts := outputs(t, disk)
	if _, err := Extract(ctx, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(opts.Rootfs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfs left behind")
	}
}

func TestHashFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("abc"), 0o644)
	f, err := HashFile(p)
	if err != nil || f.Size != 3 || f.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("%+v %v", f, err)
	}
}

// TestExtractTakesTheDefaultKernelOfEachLayout: SUSE and KIWI link
// /boot/vmlinuz and /boot/initrd to the default kernel, Debian links
// /vmlinuz; the link wins over a higher version in /boot (a newer kernel
// installed but not made the default).
func TestExtractTakesTheDefaultKernelOfEachLayout(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	for _, tc := range []struct {
		name, typeCode          string
		tr                      tree
		version, kernel, initrd string
	}{
		{"SUSE links in /boot", "8300", tree{
			"boot/vmlinuz-5.14.21-150500.55.19-default":  "suse kernel",
			"boot/initrd-5.14.21-150500.55.19-default":   "suse initrd",
			"boot/vmlinuz-5.14.99-newer-but-not-default": "newer kernel, no initrd",
			"boot/vmlinuz": "->vmlinuz-5.14.21-150500.55.19-default",
			"boot/initrd":  "->initrd-5.14.21-150500.55.19-default",
		}, "5.14.21-150500.55.19-default", "suse kernel", "suse initrd"},
		{"Debian /vmlinuz naming an older kernel", "8304", tree{
			"boot/vmlinuz-6.1.0-new":     "newer kernel",
			"boot/initrd.img-6.1.0-new":  "newer initrd",
			"boot/vmlinuz-5.10.0-def":    "default kernel",
			"boot/initrd.img-5.10.0-def": "default initrd",
			"vmlinuz":                    "->boot/vmlinuz-5.10.0-def",
		}, "5.10.0-def", "default kernel", "default initrd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := extractTree(t, tc.tr, tc.typeCode)
			if res.KernelVersion != tc.version {
				t.Errorf("kernel version %q, want %q", res.KernelVersion, tc.version)
			}
			checkFile(t, res.Kernel, []byte(tc.kernel))
			checkFile(t, res.Initrd, []byte(tc.initrd))
		})
	}
}

// TestCopyPartitionReportsAnErrorOfTheCopy: an error of the copy itself
// (here a cancelled context) is returned, not lost behind the successful
// close of the output.
func TestCopyPartitionReportsAnErrorOfTheCopy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(src, bytes.Repeat([]byte{7}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = copyPartition(ctx, f, partition.Partition{Number: 1, Start: 4096, Size: 512 << 10}, filepath.Join(dir, "rootfs"))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "copy partition 1 to ") {
		t.Errorf("err = %v, want context.Canceled from copying partition 1", err)
	}
}

// extractTree makes an ext4 filesystem of tr on the only partition of a
// GPT disk (sgdisk type code typeCode) and extracts the disk's boot files.
func extractTree(t *testing.T, tr tree, typeCode string) *Result {
	t.Helper()
	img := mkfs(t, tr, 16*MiB)
	disk, tab := gptDisk(t, 32*MiB, "-n1:0:0", "-t1:"+typeCode)
	place(t, disk, img, tab.Partitions[0])
	res, err := Extract(context.Background(), outputs(t, disk))
	if err != nil {
		t.Fatal(err)
	}
	return res
}
