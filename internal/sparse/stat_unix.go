//go:build !windows

package sparse

import (
	"os"
	"syscall"
)

// blocksOf returns the number of 512-byte blocks a file allocates.
func blocksOf(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks
	}
	return (fi.Size() + 511) / 512
}

// Allocated returns the bytes a file occupies on disk.
func Allocated(fi os.FileInfo) int64 { return blocksOf(fi) * 512 }
