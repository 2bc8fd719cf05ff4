package pageblob

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

// MaxSize is the largest virtual disk size uploaded: Azure's limit for a
// VHD that becomes an image (1,023 GiB).
const MaxSize = 1023 << 30

// Source is the byte stream of a fixed VHD as it will lie in the blob: a
// file's data, then (for a raw disk) zero padding to a whole MiB and the
// 512-byte footer, which exist only in memory. It is safe for concurrent
// ReadAt.
type Source struct {
	f         *os.File
	name      string
	fileBytes int64 // bytes of the blob that come from the file
	size      int64 // blob size: virtual size + footer
	footer    []byte
	extents   []sparse.Extent // where the blob may hold non-zero bytes
	raw       bool
	modTime   time.Time
	digest    string // hex sha256 of the file, when known (SetDigest)
}

// OpenRaw opens a raw disk to be uploaded as a fixed VHD: its size is
// padded to a whole MiB and a footer follows; no VHD file is written. The
// footer's timestamp is the disk's modification time.
func OpenRaw(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (mode %s)", path, st.Mode())
	}
	virt := vhd.PaddedSize(st.Size())
	if err := checkSize(path, virt); err != nil {
		f.Close()
		return nil, err
	}
	ft, err := vhd.NewFixed(virt, st.ModTime())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fb := ft.Marshal()
	s := &Source{f: f, name: path, fileBytes: st.Size(), size: virt + vhd.FooterSize, footer: fb[:], raw: true, modTime: st.ModTime()}
	if s.extents, err = sparse.DataExtents(f, st.Size()); err != nil {
		f.Close()
		return nil, err
	}
	s.extents = append(s.extents, sparse.Extent{Off: virt, Len: vhd.FooterSize})
	return s, nil
}

// OpenVHD opens a fixed VHD whose virtual size is a whole number of MiB
// and whose footer ends the file.
func OpenVHD(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	s, err := openVHD(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func openVHD(f *os.File, path string) (*Source, error) {
	data, ft, err := vhd.Inspect(f)
	if err != nil {
		return nil, err
	}
	if ft == nil {
		return nil, fmt.Errorf("%s is not a fixed VHD (no footer); upload it as a raw disk instead", path)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if data+vhd.FooterSize != st.Size() {
		return nil, fmt.Errorf("%s: the VHD footer says %d bytes of data, but the file holds %d before its footer; convert it with osimage-vhd first", path, data, st.Size()-vhd.FooterSize)
	}
	if data%vhd.Align != 0 {
		return nil, fmt.Errorf("%s: virtual size %d bytes is not a whole number of MiB, as Azure requires; convert it with osimage-vhd (which pads it) first", path, data)
	}
	if err := checkSize(path, data); err != nil {
		return nil, err
	}
	s := &Source{f: f, name: path, fileBytes: st.Size(), size: st.Size(), modTime: st.ModTime()}
	if s.extents, err = sparse.DataExtents(f, st.Size()); err != nil {
		return nil, err
	}
	return s, nil
}

func checkSize(path string, virt int64) error {
	if virt <= 0 {
		return fmt.Errorf("%s is empty", path)
	}
	if virt > MaxSize {
		return fmt.Errorf("%s: virtual size %d bytes (%d MiB) exceeds Azure's limit of 1,023 GiB (%d MiB) for an image VHD", path, virt, virt>>20, MaxSize>>20)
	}
	return nil
}

// Close closes the underlying file.
func (s *Source) Close() error { return s.f.Close() }

// Name is the path of the file.
func (s *Source) Name() string { return s.name }

// Size is the blob's size in bytes: the virtual size plus the footer.
func (s *Source) Size() int64 { return s.size }

// IsRaw reports whether the padding and footer are added in memory.
func (s *Source) IsRaw() bool { return s.raw }

// Footer returns the 512 bytes that end the blob.
func (s *Source) Footer() ([]byte, error) {
	if s.raw {
		return append([]byte(nil), s.footer...), nil
	}
	b := make([]byte, vhd.FooterSize)
	_, err := s.f.ReadAt(b, s.size-vhd.FooterSize)
	return b, err
}

// useFooter replaces the in-memory footer of a raw source (to match a
// blob uploaded earlier from the same disk, whose footer carries another
// timestamp and unique id). It reports whether it did.
func (s *Source) useFooter(b []byte) bool {
	if !s.raw || len(b) != vhd.FooterSize {
		return false
	}
	ft, err := vhd.Decode(b)
	if err != nil || ft.DiskType != vhd.DiskTypeFixed || int64(ft.CurrentSize) != s.size-vhd.FooterSize {
		return false
	}
	s.footer = append(s.footer[:0], b...)
	return true
}

// Extents returns the byte ranges of the blob that may hold non-zero
// bytes; everything else is zero.
func (s *Source) Extents() []sparse.Extent { return s.extents }

// ReadAt reads the blob's bytes at off.
func (s *Source) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < s.size {
		switch {
		case off < s.fileBytes:
			want := min(int64(len(p)-n), s.fileBytes-off)
			m, err := s.f.ReadAt(p[n:n+int(want)], off)
			n += m
			off += int64(m)
			if err != nil && !(err == io.EOF && int64(m) == want) {
				return n, fmt.Errorf("read %s at %d: %w", s.name, off, err)
			}
		case off < s.size-vhd.FooterSize:
			want := min(int64(len(p)-n), s.size-vhd.FooterSize-off)
			clear(p[n : n+int(want)])
			n += int(want)
			off += want
		default:
			m := copy(p[n:], s.footer[off-(s.size-vhd.FooterSize):])
			n += m
			off += int64(m)
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// SetDigest gives the hex sha256 of the file, as the artifact records it
// (osimage-disk computes it): it then identifies the input for resuming,
// so a fresh copy of the same disk (another modification time) resumes
// the upload of the first. It is taken as given, not checked: the pages a
// resume finds in the blob are compared with the file byte for byte.
func (s *Source) SetDigest(sha256Hex string) {
	s.digest = strings.ToLower(strings.TrimSpace(sha256Hex))
}

// fingerprint identifies the input of an upload for resuming: path-free,
// from the file's sha256 when known (SetDigest), else from its size and
// modification time.
func (s *Source) fingerprint() string {
	id := fmt.Sprintf("%d", s.modTime.UnixNano())
	if s.digest != "" {
		id = "sha256:" + s.digest
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%s/%t", s.size, s.fileBytes, id, s.raw))
	return hex.EncodeToString(h[:8])
}
