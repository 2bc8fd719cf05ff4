package kiwi

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

// KIS is what a kis archive held, extracted into a directory.
//
// KIWI 9.24 writes for image="kis" one NAME.ARCH-VERSION.tar.xz (result key
// kis_archive) with:
//
//	NAME.ARCH-VERSION-KVER.kernel   the kernel
//	NAME.ARCH-VERSION.initrd        the dracut initramfs
//	NAME.ARCH-VERSION               the root filesystem image (.xz if compressed)
//	NAME.ARCH-VERSION.md5           "MD5 BLOCKS BLOCKSIZE ..." of the rootfs image
//	NAME.ARCH-VERSION.append        the kernel command line (root=UUID=...)
type KIS struct {
	Kernel, Initrd, Rootfs string // paths of the extracted files
	Append                 string // path of the .append file, if any
	Cmdline                string // its content, trimmed
	KernelVersion          string // from the kernel's file name, if it can be told
	// Other lists entries the archive held that are none of the above
	// (for example a Xen hypervisor), extracted too.
	Other []string
}

// ExtractKIS unpacks a kis .tar.xz (or plain .tar) into dir, which must
// exist, and sorts its files by role. The rootfs is written sparsely and
// checked against the archive's .md5 when there is one.
func ExtractKIS(ctx context.Context, archive, dir string) (*KIS, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, fmt.Errorf("open kis archive: %w", err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(archive, ".xz") {
		xr, wait, err := xzReader(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("kis archive %s: %w", archive, err)
		}
		defer wait()
		r = xr
	}
	tr := tar.NewReader(r)
	names := map[string]string{} // base name -> extracted path
	sums := map[string]string{}  // base name -> md5 of its content
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("kis archive %s: %w", archive, err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("kis archive %s: entry %q is not a regular file", archive, h.Name)
		}
		name := path.Clean(h.Name)
		if strings.Contains(name, "/") || name == "." || name == ".." {
			return nil, fmt.Errorf("kis archive %s: entry %q is not a plain file name", archive, h.Name)
		}
		out := filepath.Join(dir, name)
		sum, err := writeSparse(ctx, out, tr, h.Size)
		if err != nil {
			return nil, fmt.Errorf("kis archive %s: %s: %w", archive, name, err)
		}
		names[name] = out
		sums[name] = sum
	}
	k, err := classifyKIS(names)
	if err != nil {
		return nil, fmt.Errorf("kis archive %s: %w", archive, err)
	}
	for n, p := range names {
		if !strings.HasSuffix(n, ".md5") {
			continue
		}
		want, err := readMD5(p)
		if err != nil {
			return nil, err
		}
		target := strings.TrimSuffix(n, ".md5")
		if got, ok := sums[target]; ok && want != "" && got != want {
			return nil, fmt.Errorf("kis archive %s: %s has md5 %s, %s says %s", archive, target, got, n, want)
		}
	}
	if err := k.readCmdline(); err != nil {
		return nil, err
	}
	return k, nil
}

// readCmdline sets Cmdline from the .append file, if there is one.
func (k *KIS) readCmdline() error {
	if k.Append == "" {
		return nil
	}
	b, err := os.ReadFile(k.Append)
	if err != nil {
		return err
	}
	k.Cmdline = strings.TrimSpace(string(b))
	return nil
}

// SeparateKIS reports whether KIWI wrote the kis files separately, so that
// there is no archive to extract.
func (r *Result) SeparateKIS() bool { return r.Kernel != "" && r.Initrd != "" && r.Rootfs != "" }

// KIS returns the kis files of a build: the separate files when KIWI wrote
// them (kis_kernel, kis_initrd, kis_rootfs and kis_append), otherwise those
// of the kis archive, extracted into dir (created; see ExtractKIS). It
// returns nil when the build made no kis output.
func (r *Result) KIS(ctx context.Context, dir string) (*KIS, error) {
	switch {
	case r.SeparateKIS():
		k := &KIS{Kernel: r.Kernel, Initrd: r.Initrd, Rootfs: r.Rootfs, Append: r.Append}
		if err := k.readCmdline(); err != nil {
			return nil, err
		}
		return k, nil
	case r.KISArchive != "":
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		return ExtractKIS(ctx, r.KISArchive, dir)
	}
	return nil, nil
}

// xzCommand is the xz binary ExtractKIS prefers: it decompresses about
// three times faster than the pure Go reader (120 against 40 MB/s here).
// Empty (or not installed) uses github.com/ulikunitz/xz.
var xzCommand = "xz"

// xzReader decompresses f with the xz command when it is installed, else
// in Go. wait releases the command; call it when done reading.
func xzReader(ctx context.Context, f *os.File) (io.Reader, func(), error) {
	if bin, err := exec.LookPath(xzCommand); xzCommand != "" && err == nil {
		cmd := exec.CommandContext(ctx, bin, "-dc")
		cmd.Stdin = f
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		r := &cmdReader{r: bufio.NewReaderSize(out, 1<<20), cmd: cmd, stderr: &stderr}
		return r, r.abort, nil
	}
	xr, err := xz.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	return xr, func() {}, nil
}

// cmdReader reads a command's stdout and turns its failure into the read
// error at EOF, so a corrupt archive is not mistaken for a short one.
type cmdReader struct {
	r      io.Reader
	cmd    *exec.Cmd
	stderr *strings.Builder
	done   bool
	err    error
}

func (c *cmdReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		if cerr := c.close(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

// abort stops xz if it is still writing (an early return) and reaps it.
func (c *cmdReader) abort() {
	if !c.done {
		_ = c.cmd.Process.Kill()
	}
	_ = c.close()
}

func (c *cmdReader) close() error {
	if c.done {
		return c.err
	}
	c.done = true
	if c.cmd.Process != nil && c.cmd.ProcessState == nil {
		if err := c.cmd.Wait(); err != nil {
			c.err = fmt.Errorf("xz -dc: %v: %s", err, strings.TrimSpace(c.stderr.String()))
		}
	}
	return c.err
}

// classifyKIS sorts extracted base names into roles.
func classifyKIS(names map[string]string) (*KIS, error) {
	k := &KIS{}
	var rest []string
	var md5Base string
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		switch {
		case strings.HasSuffix(n, ".kernel"):
			k.Kernel = names[n]
		case strings.HasSuffix(n, ".initrd"), strings.HasSuffix(n, ".initrd.xz"):
			k.Initrd = names[n]
		case strings.HasSuffix(n, ".append"):
			k.Append = names[n]
		case strings.HasSuffix(n, ".md5"):
			md5Base = strings.TrimSuffix(n, ".md5")
		default:
			rest = append(rest, n)
		}
	}
	// The rootfs is the file the .md5 describes, else the only unknown one.
	for i, n := range rest {
		if md5Base != "" && (n == md5Base || n == md5Base+".xz") {
			k.Rootfs = names[n]
			rest = append(rest[:i:i], rest[i+1:]...)
			break
		}
	}
	if k.Rootfs == "" && len(rest) == 1 {
		k.Rootfs, rest = names[rest[0]], nil
	}
	for _, n := range rest {
		k.Other = append(k.Other, names[n])
	}
	var missing []string
	if k.Kernel == "" {
		missing = append(missing, "kernel (*.kernel)")
	}
	if k.Initrd == "" {
		missing = append(missing, "initrd (*.initrd)")
	}
	if k.Rootfs == "" {
		missing = append(missing, "rootfs image")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no %s among %s", strings.Join(missing, ", no "), strings.Join(sorted, ", "))
	}
	if md5Base != "" {
		kn := filepath.Base(k.Kernel)
		if v, ok := strings.CutPrefix(kn, md5Base+"-"); ok {
			k.KernelVersion = strings.TrimSuffix(v, ".kernel")
		}
	}
	return k, nil
}

// readMD5 returns the first field of a KIWI .md5 file.
func readMD5(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "", nil
	}
	return strings.ToLower(f[0]), nil
}

// writeSparse copies r into a new file at p, leaving all-zero blocks as
// holes, and returns the md5 of the content, which must be size bytes long.
func writeSparse(ctx context.Context, p string, r io.Reader, size int64) (string, error) {
	out, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	h := md5.New()
	buf := make([]byte, 1<<20)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			out.Close()
			return "", err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			b := buf[:n]
			h.Write(b)
			if !sparse.IsZero(b) {
				if _, err := out.WriteAt(b, off); err != nil {
					out.Close()
					return "", err
				}
			}
			off += int64(n)
		}
		if rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			out.Close()
			return "", rerr
		}
	}
	if off != size {
		out.Close()
		return "", fmt.Errorf("archive entry truncated: %d of %d bytes", off, size)
	}
	if off != size {
		out.Close()
		return "", fmt.Errorf("archive entry truncated: %d of %d bytes", off, size)
	}
	if err := out.Truncate(off); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
