package vhd

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

// Options tune Convert and ConvertInPlace.
type Options struct {
	// Force replaces an existing output file (copy mode only).
	Force bool
	// MD5 and SHA256 ask for checksums of the whole output file. In copy mode
	// they are computed in the same pass as the copy; in place they need one
	// read of the data.
	MD5, SHA256 bool
	// Progress, if set, is called with the bytes done out of total.
	Progress func(done, total int64)
	// Now gives the footer's timestamp; defaults to time.Now.
	Now func() time.Time
	// Identity is the input's content identity ("sha256:<hex>" of the
	// disk): the footer's unique id is derived from it, so the same disk
	// (and Now) gives the same VHD bytes. Empty: a random id.
	Identity string
}

// Result says what a conversion produced.
type Result struct {
	Path        string // the fixed VHD
	InputSize   int64  // bytes of disk data in the input
	VirtualSize int64  // the VHD's virtual size (InputSize padded to a MiB)
	// PassedThrough is true when the input already was a fixed VHD with a
	// MiB-aligned size, so nothing was written.
	PassedThrough bool
	MD5, SHA256   string // hex, when asked for
	Copy          sparse.Stats
}

// Inspect looks at the file at path and returns how many leading bytes
// are disk data and, if the file ends in a valid footer, that footer.
// A file ending in a corrupt footer is an error; so is a dynamic or
// differencing VHD (whose data is not a plain prefix of the file).
func Inspect(f *os.File) (dataSize int64, footer *Footer, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	if st.IsDir() {
		return 0, nil, fmt.Errorf("%s is a directory, want a disk image file", f.Name())
	}
	if !st.Mode().IsRegular() {
		return 0, nil, fmt.Errorf("%s is not a regular file (mode %s)", f.Name(), st.Mode())
	}
	size := st.Size()
	if size == 0 {
		return 0, nil, fmt.Errorf("%s is empty", f.Name())
	}
	if size >= FooterSize {
		b := make([]byte, FooterSize)
		if _, err := f.ReadAt(b, size-FooterSize); err != nil {
			return 0, nil, fmt.Errorf("read the last %d bytes of %s: %w", FooterSize, f.Name(), err)
		}
		ft, err := Decode(b)
		switch {
		case errors.Is(err, ErrNotVHD):
			// Not a VHD: a raw disk. Dynamic VHDs carry a footer copy at
			// offset 0 as well; check for it so we do not treat one as raw.
			head := make([]byte, FooterSize)
			if _, err := f.ReadAt(head, 0); err == nil {
				if hf, err := Decode(head); err == nil && hf.DiskType != DiskTypeFixed {
					return 0, nil, fmt.Errorf("%s is a %s VHD; only fixed VHDs and raw disks are read directly", f.Name(), typeName(hf.DiskType))
				}
			}
			return size, nil, nil
		case err != nil:
			return 0, nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		if ft.DiskType != DiskTypeFixed {
			return 0, nil, fmt.Errorf("%s is a %s VHD; only fixed VHDs and raw disks are read directly", f.Name(), typeName(ft.DiskType))
		}
		if int64(ft.CurrentSize) > size-FooterSize {
			return 0, nil, fmt.Errorf("%s: %w", f.Name(), &FooterError{"current size", fmt.Sprintf("%d bytes, but the file holds only %d before its footer", ft.CurrentSize, size-FooterSize)})
		}
		return int64(ft.CurrentSize), &ft, nil
	}
	return size, nil, nil
}

func typeName(t uint32) string {
	switch t {
	case DiskTypeDynamic:
		return "dynamic"
	case DiskTypeDiff:
		return "differencing"
	}
	return fmt.Sprintf("type-%d", t)
}

// alreadyAzureReady reports whether a fixed VHD needs no work: a whole
// number of MiB of data right before its footer.
func alreadyAzureReady(fileSize, dataSize int64, ft *Footer) bool {
	return ft != nil && dataSize%Align == 0 && dataSize+FooterSize == fileSize && CheckSize(dataSize) == nil
}

// Convert writes a fixed VHD of the raw disk (or fixed VHD) at src to dst:
// the data extents are copied, holes stay holes, the data is padded with
// zeros to a whole MiB and the footer follows. The output appears under dst
// only when complete; until then it is a hidden temporary file next to it,
// removed on any failure or cancellation. An existing dst is an error
// unless opts.Force. A src that already is an Azure-ready fixed VHD is
// passed through: Result.Path is src and nothing is written.
func Convert(ctx context.Context, src, dst string, opts Options) (res Result, err error) {
	in, err := os.Open(src)
	if err != nil {
		return res, fmt.Errorf("open input disk: %w", err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return res, err
	}
	dataSize, ft, err := Inspect(in)
	if err != nil {
		return res, err
	}
	res.InputSize = dataSize
	res.VirtualSize = PaddedSize(dataSize)
	if alreadyAzureReady(st.Size(), dataSize, ft) {
		res.Path, res.PassedThrough = src, true
		return res, hashExisting(ctx, in, st.Size(), opts, &res)
	}
	if err := CheckSize(res.VirtualSize); err != nil {
		return res, fmt.Errorf("%s: %w", src, err)
	}
	if err := checkOutput(src, dst, opts.Force); err != nil {
		return res, err
	}
	footer, err := NewFixedFor(res.VirtualSize, now(opts), opts.Identity)
	if err != nil {
		return res, err
	}

	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return res, fmt.Errorf("create output next to %s: %w", dst, err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file private (0600); the VHD is an ordinary
	// output, readable like the raw disk it comes from.
	if err := tmp.Chmod(st.Mode().Perm() | 0o644); err != nil {
		return res, fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}

	hashes, finish := newHashes(opts)
	total := res.VirtualSize + FooterSize
	res.Copy, err = sparse.Copy(ctx, tmp, in, sparse.CopyOptions{
		Size:   dataSize,
		Hashes: hashes,
		Progress: func(done int64) {
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		},
	})
	if err != nil {
		return res, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	fb := footer.Marshal()
	if err := writeFooter(tmp, res.VirtualSize, fb); err != nil {
		return res, err
	}
	for _, h := range hashes {
		if err := writeZeros(h, res.VirtualSize-dataSize); err != nil {
			return res, err
		}
		h.Write(fb[:])
	}
	if err := tmp.Close(); err != nil {
		return res, err
	}
	if err := place(tmp.Name(), dst, opts.Force); err != nil {
		return res, err
	}
	tmp = nil
	res.Path = dst
	finish(&res)
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	return res, nil
}

// ConvertInPlace turns the raw disk at path into a fixed VHD by padding it
// to a whole MiB and appending the footer: O(1) in the size of the disk.
// A fixed VHD with a MiB-aligned size is left alone; one with an unaligned
// size is re-footed. On failure the file is restored to its old size.
func ConvertInPlace(ctx context.Context, path string, opts Options) (res Result, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return res, fmt.Errorf("open disk for in-place conversion: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return res, err
	}
	dataSize, ft, err := Inspect(f)
	if err != nil {
		return res, err
	}
	res.Path, res.InputSize, res.VirtualSize = path, dataSize, PaddedSize(dataSize)
	if alreadyAzureReady(st.Size(), dataSize, ft) {
		res.PassedThrough = true
		return res, hashExisting(ctx, f, st.Size(), opts, &res)
	}
	if err := CheckSize(res.VirtualSize); err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	footer, err := NewFixedFor(res.VirtualSize, now(opts), opts.Identity)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	origSize := st.Size()
	var oldTail []byte // bytes after the data that this conversion overwrites
	if origSize > dataSize {
		oldTail = make([]byte, origSize-dataSize)
		if _, err := f.ReadAt(oldTail, dataSize); err != nil {
			return res, fmt.Errorf("read old footer of %s: %w", path, err)
		}
	}
	restore := func() {
		f.Truncate(dataSize)
		if oldTail != nil {
			f.WriteAt(oldTail, dataSize)
		}
		f.Truncate(origSize)
	}
	// Cut off any old footer, then extend with a hole to the padded size.
	if err := f.Truncate(dataSize); err != nil {
		restore()
		return res, fmt.Errorf("truncate %s: %w", path, err)
	}
	fb := footer.Marshal()
	if err := writeFooter(f, res.VirtualSize, fb); err != nil {
		restore()
		return res, err
	}
	if err := hashExisting(ctx, f, res.VirtualSize+FooterSize, opts, &res); err != nil {
		// The conversion itself is complete and valid; only the checksum failed.
		return res, err
	}
	return res, nil
}

// writeFooter sizes f to size+512 and writes the footer at size.
func writeFooter(f *os.File, size int64, fb [FooterSize]byte) error {
	if err := f.Truncate(size + FooterSize); err != nil {
		return fmt.Errorf("pad %s to %d bytes: %w", f.Name(), size, err)
	}
	if _, err := f.WriteAt(fb[:], size); err != nil {
		return fmt.Errorf("write footer of %s: %w", f.Name(), err)
	}
	return nil
}

// checkOutput validates the destination before anything is written.
func checkOutput(src, dst string, force bool) error {
	if dst == "" {
		return fmt.Errorf("no output path")
	}
	dir := filepath.Dir(dst)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	} else if !st.IsDir() {
		return fmt.Errorf("output directory %s is not a directory", dir)
	}
	if a, b := absClean(src), absClean(dst); a == b {
		return fmt.Errorf("output %s is the input; use in-place conversion to convert a disk into itself", dst)
	}
	st, err := os.Lstat(dst)
	switch {
	case err == nil && st.IsDir():
		return fmt.Errorf("output %s is a directory", dst)
	case err == nil && !force:
		return fmt.Errorf("output %s already exists; set force = true (or packer build -force) to replace it", dst)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("output %s: %w", dst, err)
	}
	return nil
}

func absClean(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		if r, err := filepath.EvalSymlinks(a); err == nil {
			return r
		}
		return a
	}
	return filepath.Clean(p)
}

// place moves the finished temporary file to dst. Without force it links,
// which fails if dst appeared meanwhile, so nothing is ever overwritten.
func place(tmp, dst string, force bool) error {
	if force {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("move finished VHD to %s: %w", dst, err)
		}
		return nil
	}
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("output %s appeared while converting; not replacing it (set force = true to replace)", dst)
		}
		// Filesystems without hard links: check, then rename.
		if _, serr := os.Lstat(dst); serr == nil {
			return fmt.Errorf("output %s already exists; not replacing it", dst)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("move finished VHD to %s: %w", dst, err)
		}
		return nil
	}
	return os.Remove(tmp)
}

func now(o Options) time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// newHashes returns the writers for the asked-for checksums and a function
// that stores their sums in a Result.
func newHashes(o Options) ([]io.Writer, func(*Result)) {
	var md, sh hash.Hash
	var ws []io.Writer
	if o.MD5 {
		md = md5.New()
		ws = append(ws, md)
	}
	if o.SHA256 {
		sh = sha256.New()
		ws = append(ws, sh)
	}
	return ws, func(r *Result) {
		if md != nil {
			r.MD5 = hex.EncodeToString(md.Sum(nil))
		}
		if sh != nil {
			r.SHA256 = hex.EncodeToString(sh.Sum(nil))
		}
	}
}

// hashExisting computes the asked-for checksums of the first size bytes of
// f, reading only its data extents.
func hashExisting(ctx context.Context, f *os.File, size int64, opts Options, res *Result) error {
	hashes, finish := newHashes(opts)
	if len(hashes) == 0 {
		return nil
	}
	_, err := sparse.HashFile(ctx, f, sparse.CopyOptions{Size: size, Hashes: hashes, Progress: func(done int64) {
		if opts.Progress != nil {
			opts.Progress(done, size)
		}
	}})
	if err != nil {
		return err
	}
	finish(res)
	return nil
}

var zeros [64 << 10]byte

func writeZeros(w io.Writer, n int64) error {
	for n > 0 {
		c := int64(len(zeros))
		if n < c {
			c = n
		}
		if _, err := w.Write(zeros[:c]); err != nil {
			return err
		}
		n -= c
	}
	return nil
}
