//go:build linux || darwin || freebsd

package sparse

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// DataExtents lists the ranges of f within [0, size) that hold data, using
// SEEK_DATA/SEEK_HOLE. Filesystems without hole support report one extent
// covering everything, which is always correct (just not sparse).
func DataExtents(f *os.File, size int64) ([]Extent, error) {
	if size <= 0 {
		return nil, nil
	}
	fd := int(f.Fd())
	var out []Extent
	off := int64(0)
	for off < size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) { // no data after off
				break
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return []Extent{{Off: 0, Len: size}}, nil
			}
			return nil, fmt.Errorf("seek data in %s at %d: %w", f.Name(), off, err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole in %s at %d: %w", f.Name(), data, err)
		}
		if hole > size {
			hole = size
		}
		if n := len(out); n > 0 && out[n-1].End() == data {
			out[n-1].Len += hole - data
		} else {
			out = append(out, Extent{Off: data, Len: hole - data})
		}
		off = hole
	}
	// Leave the file offset where callers expect it.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind %s: %w", f.Name(), err)
	}
	return out, nil
}
