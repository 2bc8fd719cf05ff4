package vhd

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// rawDisk makes a sparse raw disk of size bytes with a few data regions.
func rawDisk(t *testing.T, size int64) string {
	t.Helper()
	data := bytes.Repeat([]byte("osimage-raw-data"), 1<<16) // 1 MiB
	return testutil.SparseFile(t, filepath.Join(t.TempDir(), "disk.raw"), size, map[int64][]byte{
		0:            data[:4096],
		size / 3:     data,
		size - 12345: data[:12345],
	})
}

type qemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func qemuImgInfo(t *testing.T, qemuImg, path string) qemuInfo {
	t.Helper()
	out := testutil.Run(t, qemuImg, "info", "-f", "vpc", "--output", "json", path)
	var qi qemuInfo
	if err := json.Unmarshal([]byte(out), &qi); err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	return qi
}

func TestConvertWritesAFixedVHDThatQemuImgAccepts(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	size := int64(100<<20 + 4096 + 7) // not MiB aligned, not even sector aligned
	src := rawDisk(t, size)
	dst := filepath.Join(t.TempDir(), "disk.vhd")
	var lastDone, lastTotal int64
	res, err := Convert(context.Background(), src, dst, Options{MD5: true, SHA256: true, Progress: func(d, tot int64) { lastDone, lastTotal = d, tot }})
	if err != nil {
		t.Fatal(err)
	}
	want := PaddedSize(size)
	if res.VirtualSize != want || want != 101<<20 {
		t.Fatalf("virtual size %d, want %d", res.VirtualSize, want)
	}
	st, _ := os.Stat(dst)
	if st.Mode().Perm()&0o044 != 0o044 {
		t.Fatalf("output mode %v: others cannot read it", st.Mode())
	}
	if st.Size() != want+FooterSize {
		t.Fatalf("file size %d, want %d", st.Size(), want+FooterSize)
	}
	if lastDone != lastTotal || lastTotal != st.Size() {
		t.Fatalf("progress ended at %d/%d", lastDone, lastTotal)
	}
	if a := sparse.Allocated(st); a > 8<<20 {
		t.Fatalf("output allocates %d bytes; holes were not preserved", a)
	}
	qi := qemuImgInfo(t, qemuImg, dst)
	if qi.Format != "vpc" || qi.VirtualSize != want {
		t.Fatalf("qemu-img info: %+v, want vpc of %d bytes", qi, want)
	}
	// Pad the raw copy so compare sees equal sizes; the padding is zeros.
	padded := filepath.Join(t.TempDir(), "padded.raw")
	testutil.Run(t, "cp", "--sparse=always", src, padded)
	os.Truncate(padded, want)
	if out := testutil.Run(t, qemuImg, "compare", "-f", "vpc", "-F", "raw", dst, padded); !strings.Contains(out, "identical") {
		t.Fatalf("qemu-img compare: %s", out)
	}
	whole, _ := os.ReadFile(dst)
	if m := md5.Sum(whole); hex.EncodeToString(m[:]) != res.MD5 {
		t.Fatal("streamed MD5 differs from the file's")
	}
	if s := sha256.Sum256(whole); hex.EncodeToString(s[:]) != res.SHA256 {
		t.Fatal("streamed SHA-256 differs from the file's")
	}
	// Our own reader agrees.
	f, _ := os.Open(dst)
	defer f.Close()
	n, ft, err := Inspect(f)
	if err != nil || ft == nil || n != want {
		t.Fatalf("Inspect = %d, %v, %v", n, ft, err)
	}
}

func TestQemuImgForceSizeVHDDecodesToTheSameSize(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	for _, mib := range []int64{30, 1000, 1025} {
		src := rawDisk(t, mib<<20)
		out := filepath.Join(t.TempDir(), "q.vhd")
		testutil.Run(t, qemuImg, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size", src, out)
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		n, ft, err := Inspect(f)
		f.Close()
		if err != nil || ft == nil {
			t.Fatalf("%d MiB: Inspect: %v", mib, err)
		}
		if n != mib<<20 || !ft.IsMaxGeometry() || string(ft.CreatorApp[:]) != "qem2" {
			t.Fatalf("%d MiB: size %d, footer %+v", mib, n, ft)
		}
		// Byte-for-byte: our encoder reproduces qemu's footer, checksum included.
		tail := make([]byte, FooterSize)
		if f, err := os.Open(out); err != nil {
			t.Fatal(err)
		} else if _, err := f.ReadAt(tail, n); err != nil {
			f.Close()
			t.Fatalf("%d MiB: reading the footer: %v", mib, err)
		} else {
			f.Close()
		}
		if enc := ft.Marshal(); !bytes.Equal(enc[:], tail) {
			t.Fatalf("%d MiB: re-encoding qemu's footer changes it", mib)
		}
		// And qemu's VHD passes through untouched.
		res, err := Convert(context.Background(), out, filepath.Join(t.TempDir(), "x.vhd"), Options{})
		if err != nil || !res.PassedThrough || res.Path != out {
			t.Fatalf("%d MiB: qemu VHD not passed through: %+v %v", mib, res, err)
		}
	}
}

func TestConvertInPlaceAppendsFooter(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	size := int64(64<<20 + 100)
	src := rawDisk(t, size)
	before, _ := os.ReadFile(src)
	res, err := ConvertInPlace(context.Background(), src, Options{SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(src)
	if int64(len(after)) != 65<<20+FooterSize || !bytes.Equal(after[:size], before) || !sparse.IsZero(after[size:65<<20]) {
		t.Fatalf("in-place result wrong: %d bytes", len(after))
	}
	if s := sha256.Sum256(after); hex.EncodeToString(s[:]) != res.SHA256 {
		t.Fatal("sha256 mismatch")
	}
	if qi := qemuImgInfo(t, qemuImg, src); qi.VirtualSize != 65<<20 {
		t.Fatalf("qemu-img sees %d bytes", qi.VirtualSize)
	}
	// Second run: detected, not double-footed.
	res2, err := ConvertInPlace(context.Background(), src, Options{})
	if err != nil || !res2.PassedThrough {
		t.Fatalf("second run: %+v %v", res2, err)
	}
	if st, _ := os.Stat(src); st.Size() != 65<<20+FooterSize {
		t.Fatalf("second run changed the size to %d", st.Size())
	}
}

func TestConvertRefootsAnUnalignedFixedVHD(t *testing.T) {
	qemuImg := testutil.NeedTool(t, "qemu-img", "qemu-utils")
	src := rawDisk(t, 1000<<20)
	out := filepath.Join(t.TempDir(), "chs.vhd")
	// Without force_size qemu rounds the size up to the CHS geometry: not
	// MiB aligned, which Azure refuses.
	testutil.Run(t, qemuImg, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", src, out)
	res, err := ConvertInPlace(context.Background(), out, Options{})
	if err != nil || res.PassedThrough {
		t.Fatalf("%+v %v", res, err)
	}
	if res.VirtualSize%Align != 0 || res.VirtualSize < 1000<<20 {
		t.Fatalf("virtual size %d", res.VirtualSize)
	}
	if qi := qemuImgInfo(t, qemuImg, out); qi.VirtualSize != res.VirtualSize {
		t.Fatalf("qemu-img sees %d, want %d", qi.VirtualSize, res.VirtualSize)
	}
}

func TestConvertRejectsBadInputBeforeWritingAnything(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.raw")
	os.WriteFile(empty, nil, 0o644)
	corrupt := filepath.Join(dir, "corrupt.vhd")
	{
		f, _ := NewFixed(1<<20, timeZero())
		b := f.Marshal()
		b[100] = 1 // reserved byte: checksum no longer matches
		os.WriteFile(corrupt, append(make([]byte, 1<<20), b[:]...), 0o644)
	}
	dynamic := filepath.Join(dir, "dyn.vhd")
	{
		f, _ := NewFixed(1<<20, timeZero())
		f.DiskType, f.DataOffset = DiskTypeDynamic, 512
		b := f.Marshal()
		os.WriteFile(dynamic, append(append(b[:], make([]byte, 4096)...), b[:]...), 0o644)
	}
	huge := filepath.Join(dir, "huge.raw")
	os.WriteFile(huge, nil, 0o644)
	os.Truncate(huge, MaxSize+1)
	good := rawDisk(t, 2<<20)
	existing := filepath.Join(dir, "exists.vhd")
	os.WriteFile(existing, []byte("keep me"), 0o644)

	for _, tc := range []struct {
		name, src, dst, want string
	}{
		{"missing", filepath.Join(dir, "nope.raw"), filepath.Join(dir, "o1.vhd"), "no such file"},
		{"empty", empty, filepath.Join(dir, "o2.vhd"), "is empty"},
		{"directory", dir, filepath.Join(dir, "o3.vhd"), "is a directory"},
		{"corrupt footer", corrupt, filepath.Join(dir, "o4.vhd"), "corrupt VHD footer: checksum"},
		{"dynamic vhd", dynamic, filepath.Join(dir, "o5.vhd"), "dynamic VHD"},
		{"over the limit", huge, filepath.Join(dir, "o6.vhd"), "exceeds the VHD limit"},
		{"output dir missing", good, filepath.Join(dir, "no", "such", "o7.vhd"), "output directory"},
		{"output exists", good, existing, "already exists"},
		{"output is input", good, good, "is the input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Convert(context.Background(), tc.src, tc.dst, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if tc.dst != existing && tc.dst != good {
				if _, err := os.Stat(tc.dst); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("output %s exists after a failure", tc.dst)
				}
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Fatal("existing output was overwritten")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*partial*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestConvertForceReplacesExistingOutput(t *testing.T) {
	src := rawDisk(t, 2<<20)
	dst := filepath.Join(t.TempDir(), "out.vhd")
	os.WriteFile(dst, []byte("old"), 0o644)
	if _, err := Convert(context.Background(), src, dst, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dst); st.Size() != 2<<20+FooterSize {
		t.Fatalf("size %d", st.Size())
	}
}

func TestConvertCancelledLeavesNoOutput(t *testing.T) {
	src := rawDisk(t, 64<<20)
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.vhd")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Convert(ctx, src, dst, Options{Progress: func(done, total int64) {
		if done > 0 {
			cancel() // interrupt mid-copy
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestInPlaceFailureRestoresTheDisk(t *testing.T) {
	src := rawDisk(t, 3<<20+5)
	before, _ := os.ReadFile(src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ConvertInPlace(ctx, src, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	after, _ := os.ReadFile(src)
	if !bytes.Equal(before, after) {
		t.Fatal("a cancelled in-place conversion changed the disk")
	}
}

// Root reads and writes any file, so these run as nobody (in a child
// process when the tests run as root).
func TestConvertReportsAnUnreadableInputAndWritesNothing(t *testing.T) {
	if !testutil.Unprivileged(t) {
		return
	}
	dir := t.TempDir()
	unreadable := filepath.Join(dir, "unreadable.raw")
	if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out.vhd")
	_, err := Convert(context.Background(), unreadable, dst, Options{})
	if !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "open input disk") || !strings.Contains(err.Error(), unreadable) {
		t.Fatalf("err = %v, want permission denied naming %s", err, unreadable)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %v after the failure, want only the input", entries)
	}
}

func TestInPlaceConversionOfAReadOnlyDiskFailsAndLeavesItAlone(t *testing.T) {
	if !testutil.Unprivileged(t) {
		return
	}
	src := rawDisk(t, 3<<20+5)
	before, _ := os.ReadFile(src)
	if err := os.Chmod(src, 0o444); err != nil {
		t.Fatal(err)
	}
	_, err := ConvertInPlace(context.Background(), src, Options{})
	if !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "in-place conversion") {
		t.Fatalf("read-only: err = %v, want permission denied for the in-place conversion", err)
	}
	if after, _ := os.ReadFile(src); !bytes.Equal(before, after) {
		t.Fatal("the read-only disk changed")
	}
}
