// Package bootfiles takes the kernel, the initramfs and the root filesystem
// out of a raw disk image without mounting anything: the partition table is
// read in Go (internal/partition), the root partition is copied out sparsely
// as the rootfs image (internal/sparse), and the kernel and initramfs are
// read from its /boot, or from a separate boot partition, with e2fsprogs'
// debugfs. Every file is checksummed with SHA-256.
//
// This is the path for disks KIWI made without kis output, and for disks
// made elsewhere; it needs an ext2/3/4 root (or boot) filesystem.
package bootfiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/osimage/packer-plugin-osimage/internal/partition"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

// Options say where the disk is and where the three files go.
type Options struct {
	// Disk is the raw disk image (GPT or MBR).
	Disk string
	// Arch picks the GPT root type (x86_64, aarch64, amd64, arm64); empty
	// accepts any architecture's root type.
	Arch string
	// Rootfs, Kernel and Initrd are the output paths; they are created or
	// replaced, and removed again if Extract fails.
	Rootfs, Kernel, Initrd string
	// Debugfs is the debugfs binary; empty means DefaultDebugfs.
	Debugfs string
}

// File is one output with its checksum.
type File struct {
	Path   string
	Size   int64
	SHA256 string
	// Source says where it came from, e.g. "partition 1:/boot/vmlinuz-6.1.0-50-amd64".
	Source string
}

// Result is what Extract found and wrote.
type Result struct {
	Table *partition.Table
	Root  partition.Choice
	// Boot is the separate boot partition the kernel came from; nil when
	// it came from the root filesystem's /boot.
	Boot          *partition.Choice
	KernelVersion string
	Rootfs        File
	Kernel        File
	Initrd        File
}

// Extract copies the root partition of opts.Disk to opts.Rootfs and the
// kernel and initramfs it boots to opts.Kernel and opts.Initrd.
func Extract(ctx context.Context, opts Options) (res *Result, err error) {
	if opts.Disk == "" || opts.Rootfs == "" || opts.Kernel == "" || opts.Initrd == "" {
		return nil, errors.New("bootfiles: Disk, Rootfs, Kernel and Initrd must all be set")
	}
	outs := []string{opts.Rootfs, opts.Kernel, opts.Initrd}
	for i := range outs {
		a, _ := filepath.Abs(outs[i])
		if d, _ := filepath.Abs(opts.Disk); a == d {
			return nil, fmt.Errorf("bootfiles: output %s is the disk itself", outs[i])
		}
		for j := i + 1; j < len(outs); j++ {
			if b, _ := filepath.Abs(outs[j]); a == b {
				return nil, fmt.Errorf("bootfiles: two outputs are both %s", outs[i])
			}
		}
	}
	defer func() {
		if err != nil { // nothing half-done
			for _, o := range outs {
				os.Remove(o)
			}
		}
	}()

	disk, err := os.Open(opts.Disk)
	if err != nil {
		return nil, err
	}
	defer disk.Close()
	tab, root, err := findExtRoot(disk, opts.Arch)
	if err != nil {
		return nil, err
	}
	res = &Result{Table: tab, Root: root}

	res.Rootfs, err = copyPartition(ctx, disk, root.Partition, opts.Rootfs)
	if err != nil {
		return nil, err
	}
	res.Rootfs.Source = fmt.Sprintf("%s partition %d", opts.Disk, root.Partition.Number)

	rootFS := ExtFS{Image: opts.Rootfs, Debugfs: opts.Debugfs}
	// Debian links /vmlinuz -> boot/vmlinuz-VERSION; SUSE and KIWI link
	// /boot/vmlinuz. Either names the kernel that boots by default.
	preferred := ""
	if t, err := rootFS.Readlink(ctx, "/vmlinuz"); err == nil {
		preferred = path.Base(t)
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	bootFS, bootDir, where := rootFS, "/boot", fmt.Sprintf("partition %d:", root.Partition.Number)
	k, err := findBootFiles(ctx, rootFS, "/boot", preferred)
	if errors.Is(err, errNoKernel) {
		b, ok, berr := tab.FindBoot(disk)
		if berr != nil {
			return nil, berr
		}
		if !ok {
			return nil, fmt.Errorf("%s: %s/boot: %w; and there is no separate boot partition", opts.Disk, where, err)
		}
		if !isExt(b.Filesystem.Type) {
			return nil, fmt.Errorf("%s: boot %s holds %s; only ext2/3/4 can be read without mounting", opts.Disk, b.Partition, fsName(b.Filesystem.Type))
		}
		res.Boot = &b
		bootFS = ExtFS{Image: opts.Disk, Offset: b.Partition.Start, Debugfs: opts.Debugfs}
		where = fmt.Sprintf("partition %d:", b.Partition.Number)
		bootDir = "/"
		k, err = findBootFiles(ctx, bootFS, "/", preferred)
		if errors.Is(err, errNoKernel) { // some layouts keep a boot/ directory inside
			bootDir = "/boot"
			k, err = findBootFiles(ctx, bootFS, "/boot", preferred)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s%s: %w", opts.Disk, where, bootDir, err)
	}
	res.KernelVersion = k.version
	if res.Kernel, err = dump(ctx, bootFS, path.Join(bootDir, k.kernel.Name), k.kernel.Size, opts.Kernel); err != nil {
		return nil, err
	}
	res.Kernel.Source = where + path.Join(bootDir, k.kernel.Name)
	if res.Initrd, err = dump(ctx, bootFS, path.Join(bootDir, k.initrd.Name), k.initrd.Size, opts.Initrd); err != nil {
		return nil, err
	}
	res.Initrd.Source = where + path.Join(bootDir, k.initrd.Name)
	return res, nil
}

// RootFS finds the root partition of the raw disk at path, as Extract
// does, and returns its ext2/3/4 filesystem, read in place through debugfs
// (empty: DefaultDebugfs).
func RootFS(path, arch, debugfs string) (ExtFS, partition.Choice, error) {
	disk, err := os.Open(path)
	if err != nil {
		return ExtFS{}, partition.Choice{}, err
	}
	defer disk.Close()
	_, root, err := findExtRoot(disk, arch)
	if err != nil {
		return ExtFS{}, partition.Choice{}, err
	}
	return ExtFS{Image: path, Offset: root.Partition.Start, Debugfs: debugfs}, root, nil
}

// findExtRoot reads the partition table of disk and picks its root
// partition, which must hold ext2/3/4.
func findExtRoot(disk *os.File, arch string) (*partition.Table, partition.Choice, error) {
	st, err := disk.Stat()
	if err != nil {
		return nil, partition.Choice{}, err
	}
	tab, err := partition.Read(disk, st.Size())
	if err != nil {
		return nil, partition.Choice{}, fmt.Errorf("%s: %w", disk.Name(), err)
	}
	root, err := tab.FindRoot(disk, arch)
	if err != nil {
		return nil, partition.Choice{}, fmt.Errorf("%s: %w", disk.Name(), err)
	}
	if !isExt(root.Filesystem.Type) {
		return nil, partition.Choice{}, fmt.Errorf("%s: root %s holds %s; only ext2/3/4 can be read without mounting", disk.Name(), root.Partition, fsName(root.Filesystem.Type))
	}
	return tab, root, nil
}

func isExt(t string) bool { return t == "ext2" || t == "ext3" || t == "ext4" }

func fsName(t string) string {
	if t == "" {
		return "no filesystem this package recognises"
	}
	return t
}

// copyPartition copies p out of disk into a new sparse file, hashing it.
func copyPartition(ctx context.Context, disk *os.File, p partition.Partition, out string) (File, error) {
	dst, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return File{}, err
	}
	h := sha256.New()
	_, err = sparse.Copy(ctx, dst, disk, sparse.CopyOptions{SrcOffset: p.Start, Size: p.Size, Hashes: []io.Writer{h}})
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, fmt.Errorf("copy partition %d to %s: %w", p.Number, out, err)
	}
	return File{Path: out, Size: p.Size, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// dump copies a file out of fs, checks its size and hashes it.
func dump(ctx context.Context, fs ExtFS, p string, size int64, out string) (File, error) {
	if err := fs.Dump(ctx, p, out); err != nil {
		return File{}, err
	}
	f, err := HashFile(out)
	if err != nil {
		return File{}, err
	}
	if f.Size != size {
		return File{}, fmt.Errorf("debugfs dump of %s in %s wrote %d bytes, the inode says %d", p, fs, f.Size, size)
	}
	return f, nil
}

// HashFile returns a file's size and SHA-256 (for files that do not come
// through Extract, such as KIWI's kis outputs).
func HashFile(p string) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", p, err)
	}
	return File{Path: p, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

var errNoKernel = errors.New("no kernel")

type bootPair struct {
	kernel, initrd Entry
	version        string
}

// findBootFiles lists dir and picks the kernel and its initramfs.
func findBootFiles(ctx context.Context, fs ExtFS, dir, preferred string) (bootPair, error) {
	entries, err := fs.List(ctx, dir)
	if errors.Is(err, ErrNotFound) {
		return bootPair{}, errNoKernel
	}
	if err != nil {
		return bootPair{}, err
	}
	// Symlinks inside dir (vmlinuz -> vmlinuz-X, initrd -> initrd-X).
	links := map[string]string{}
	for _, e := range entries {
		if e.Symlink() && (isKernelLink(e.Name) || isInitrdLink(e.Name)) {
			if t, err := fs.Readlink(ctx, path.Join(dir, e.Name)); err == nil {
				links[e.Name] = path.Base(t)
			} else if ctx.Err() != nil {
				return bootPair{}, ctx.Err()
			}
		}
	}
	return pickBootFiles(entries, links, preferred)
}

// Kernel file name prefixes, and the names of links to the default one.
var (
	kernelPrefixes = []string{"vmlinuz-", "vmlinux-", "Image-", "zImage-", "kernel-"}
	kernelLinks    = []string{"vmlinuz", "vmlinux", "Image", "zImage", "kernel"}
	initrdLinks    = []string{"initrd.img", "initrd", "initramfs.img", "initramfs"}
	// Suffixes of files that sit next to kernels but are not kernels.
	notKernelSuffixes = []string{".old", ".sig", ".hmac", ".bak", ".dpkg-new", ".dpkg-old"}
)

func isKernelLink(n string) bool { return contains(kernelLinks, n) }
func isInitrdLink(n string) bool { return contains(initrdLinks, n) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// kernelVersion returns the version part of a kernel file name, or "".
func kernelVersion(name string) string {
	for _, s := range notKernelSuffixes {
		if strings.HasSuffix(name, s) {
			return ""
		}
	}
	for _, p := range kernelPrefixes {
		if v, ok := strings.CutPrefix(name, p); ok && v != "" {
			return v
		}
	}
	return ""
}

// initrdNames are the names distributions give the initramfs of kernel
// version v, in the order tried: Debian/Ubuntu, Fedora/dracut, SUSE, others.
func initrdNames(v string) []string {
	return []string{"initrd.img-" + v, "initramfs-" + v + ".img", "initrd-" + v, "initrd-" + v + ".img", "initramfs-" + v}
}

// pickBootFiles chooses the kernel (the target of a default link, a
// preferred name, else the highest version) and the initramfs with the
// same version (else the target of an initrd link).
//
// links maps link names in the directory to their targets' base names.
func pickBootFiles(entries []Entry, links map[string]string, preferred string) (bootPair, error) {
	byName := map[string]Entry{}
	var kernels []Entry
	for _, e := range entries {
		byName[e.Name] = e
		if e.Regular() && kernelVersion(e.Name) != "" {
			kernels = append(kernels, e)
		}
	}
	if len(kernels) == 0 {
		return bootPair{}, fmt.Errorf("%w (no %s* file among %s)", errNoKernel, strings.Join(kernelPrefixes, "*, "), names(entries))
	}
	var kernel *Entry
	want := []string{}
	for _, l := range kernelLinks {
		if t, ok := links[l]; ok {
			want = append(want, t)
		}
	}
	if preferred != "" {
		want = append(want, preferred)
	}
	for _, w := range want {
		if e, ok := byName[w]; ok && e.Regular() && kernelVersion(w) != "" {
			kernel = &e
			break
		}
	}
	if kernel == nil {
		sort.Slice(kernels, func(i, j int) bool {
			return compareVersions(kernelVersion(kernels[i].Name), kernelVersion(kernels[j].Name)) > 0
		})
		kernel = &kernels[0]
	}
	v := kernelVersion(kernel.Name)
	for _, n := range initrdNames(v) {
		if e, ok := byName[n]; ok && e.Regular() {
			return bootPair{kernel: *kernel, initrd: e, version: v}, nil
		}
	}
	for _, l := range initrdLinks {
		if t, ok := links[l]; ok {
			if e, ok := byName[t]; ok && e.Regular() {
				return bootPair{kernel: *kernel, initrd: e, version: v}, nil
			}
		}
	}
	return bootPair{}, fmt.Errorf("kernel %s found but no initramfs for version %s (looked for %s and links %s) among %s",
		kernel.Name, v, strings.Join(initrdNames(v), ", "), strings.Join(initrdLinks, ", "), names(entries))
}

func names(entries []Entry) string {
	if len(entries) == 0 {
		return "an empty directory"
	}
	n := make([]string, len(entries))
	for i, e := range entries {
		n[i] = e.Name
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// compareVersions compares version strings piecewise, numbers as numbers:
// 6.1.0-50 > 6.1.0-9, 6.10 > 6.9.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, ra := leadingRun(a)
		db, rb := leadingRun(b)
		if isDigit(da[0]) && isDigit(db[0]) {
			ta, tb := strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
			if len(ta) != len(tb) {
				return cmpInt(len(ta), len(tb))
			}
			if ta != tb {
				return strings.Compare(ta, tb)
			}
		} else if da != db {
			return strings.Compare(da, db)
		}
		a, b = ra, rb
	}
	return cmpInt(len(a), len(b))
}

func leadingRun(s string) (string, string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
