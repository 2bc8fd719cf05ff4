// Package disktest makes small bootable-looking disk images for tests of
// the osimage-disk builder: a GPT (or MBR) disk whose root partition holds
// an ext4 filesystem with /boot/vmlinuz-VERSION, its initramfs and
// /etc/os-release, made with sgdisk/sfdisk and `mkfs.ext4 -d` (no loop
// device, no root).
package disktest

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// KernelVersion is the version of the kernel the disks carry.
const KernelVersion = "6.1.0-99-amd64"

// Disk describes a made disk and what its root filesystem holds.
type Disk struct {
	Path      string
	Size      int64
	Kernel    []byte // content of /boot/vmlinuz-KernelVersion
	Initrd    []byte // content of /boot/initrd.img-KernelVersion
	OSRelease string // content of /etc/os-release
	// RootStart and RootSize locate the root partition in bytes.
	RootStart, RootSize int64
}

// Options shape the disk.
type Options struct {
	// Size of the disk in bytes; default 64 MiB.
	Size int64
	// MBR makes a DOS partition table (sfdisk) instead of GPT.
	MBR bool
	// Seed varies the kernel and initramfs content.
	Seed int64
	// Files are more files of the root filesystem (path -> content), for
	// example var/lib/dpkg/status.
	Files map[string]string
}

// Make writes a disk into dir/name and returns what it holds. It needs
// sgdisk (gdisk) or sfdisk (fdisk), and mkfs.ext4 (e2fsprogs); it skips the
// test when they are missing, or fails it under OSIMAGE_REQUIRE_TOOLS=1.
func Make(t testing.TB, dir, name string, o Options) Disk {
	t.Helper()
	if o.Size == 0 {
		o.Size = 64 << 20
	}
	mkfs := testutil.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	rng := rand.New(rand.NewSource(o.Seed + 1))
	d := Disk{
		Path:      filepath.Join(dir, name),
		Size:      o.Size,
		Kernel:    make([]byte, 300<<10),
		Initrd:    make([]byte, 700<<10),
		OSRelease: "PRETTY_NAME=\"osimage test disk\"\nID=osimagetest\nVERSION_CODENAME=test\n",
	}
	rng.Read(d.Kernel)
	rng.Read(d.Initrd)
	copy(d.Kernel[0x202:], "HdrS")

	// Partitions: 1 MiB alignment; a small "boot"-less layout with the
	// root filesystem in partition 2 (GPT: 1 is a BIOS boot partition).
	const mib = 1 << 20
	d.RootStart = 2 * mib
	d.RootSize = o.Size - d.RootStart - mib
	f, err := os.Create(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(o.Size)
	f.Close()
	if o.MBR {
		sfdisk := testutil.NeedTool(t, "sfdisk", "fdisk")
		cmd := exec.Command(sfdisk, "--quiet", d.Path)
		cmd.Stdin = strings.NewReader(fmt.Sprintf("label: dos\nstart=%d, size=%d, type=83\n", d.RootStart/512, d.RootSize/512))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v\n%s", err, out)
		}
	} else {
		sgdisk := testutil.NeedTool(t, "sgdisk", "gdisk")
		testutil.Run(t, sgdisk,
			"-n", "1:2048:4095", "-t", "1:EF02", "-c", "1:bios",
			"-n", fmt.Sprintf("2:%d:%d", d.RootStart/512, (d.RootStart+d.RootSize)/512-1),
			"-t", "2:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "-c", "2:root", d.Path)
	}

	tree := t.TempDir()
	files := map[string][]byte{
		"boot/vmlinuz-" + KernelVersion:    d.Kernel,
		"boot/initrd.img-" + KernelVersion: d.Initrd,
		"etc/os-release":                   []byte(d.OSRelease),
		"usr/bin/true":                     []byte("#!/bin/sh\n"),
	}
	for p, c := range o.Files {
		files[p] = []byte(c)
	}
	for p, b := range files {
		full := filepath.Join(tree, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("boot/vmlinuz-"+KernelVersion, filepath.Join(tree, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "root.ext4")
	f, _ = os.Create(img)
	f.Truncate(d.RootSize)
	f.Close()
	testutil.Run(t, mkfs, "-q", "-L", "ROOT", "-d", tree, img)
	testutil.Run(t, "dd", "if="+img, "of="+d.Path, "bs=1M", "seek="+strconv.FormatInt(d.RootStart, 10),
		"oflag=seek_bytes", "conv=notrunc,sparse", "status=none")
	return d
}
