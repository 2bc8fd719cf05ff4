//go:build linux

package vhd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// withFileSizeLimit runs f with RLIMIT_FSIZE set to limit bytes: writing
// or truncating a file beyond it fails with EFBIG (Go ignores SIGXFSZ).
// The limit is process-wide, so no test in this package runs in parallel.
func withFileSizeLimit(t *testing.T, limit uint64, f func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

// The file cannot grow to the padded size: ConvertInPlace fails and puts
// back what it cut off, the old footer of an unaligned fixed VHD included.
func TestInPlaceFailureRestoresTheOldFooter(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 1<<20+512)
	p := vhdFile(t, data, footerBytes(t, int64(len(data)), DiskTypeFixed))
	before, _ := os.ReadFile(p)
	var err error
	withFileSizeLimit(t, uint64(len(before)), func() {
		_, err = ConvertInPlace(context.Background(), p, Options{})
	})
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("err = %v, want EFBIG from growing the file", err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, before) {
		t.Fatalf("the failed conversion changed the disk (%d bytes, was %d)", len(after), len(before))
	}
}

func TestInPlaceFailureRestoresARawDisk(t *testing.T) {
	p := rawDisk(t, 3<<20+5)
	before, _ := os.ReadFile(p)
	var err error
	withFileSizeLimit(t, uint64(len(before)), func() {
		_, err = ConvertInPlace(context.Background(), p, Options{})
	})
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("err = %v, want EFBIG", err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, before) {
		t.Fatalf("the failed conversion changed the disk (%d bytes, was %d)", len(after), len(before))
	}
}

// A copy that cannot be written leaves no output and no temporary file.
func TestConvertFailureLeavesNoTemporaryFile(t *testing.T) {
	src := rawDisk(t, 3<<20+5)
	dir := t.TempDir()
	var err error
	withFileSizeLimit(t, 1<<20, func() {
		_, err = Convert(context.Background(), src, dir+"/o.vhd", Options{})
	})
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("err = %v, want EFBIG", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}
