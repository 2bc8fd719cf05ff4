package sparse

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// allocSlack is what a filesystem may allocate beyond the data written
// (an extent-tree block, rounding): far less than any zero region below.
const allocSlack = 64 << 10

// extentsOf returns the data extents of the file at p within [0, size).
func extentsOf(t *testing.T, p string, size int64) []Extent {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ext, err := DataExtents(f, size)
	if err != nil {
		t.Fatal(err)
	}
	return ext
}

// needHoles fails (under OSIMAGE_REQUIRE_TOOLS=1) or skips when the
// filesystem of the test's temporary directory cannot report holes.
func needHoles(t *testing.T) {
	t.Helper()
	p := makeSparse(t, 2<<20, map[int64][]byte{0: []byte("data")})
	ext := extentsOf(t, p, 2<<20)
	testutil.Need(t, DataBytes(ext) < 2<<20, fmt.Sprintf("the filesystem of %s reports no holes", filepath.Dir(p)),
		"run the tests with TMPDIR on a filesystem with SEEK_HOLE support (ext4, xfs, btrfs, tmpfs)")
}

// copyTo copies src into a new file with opts and returns its path and the stats.
func copyTo(t *testing.T, src string, opts CopyOptions) (string, Stats) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(t.TempDir(), "dst.raw")
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Copy(context.Background(), out, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst, st
}

func sameContent(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", b, len(y), a, len(x))
	}
}

// The bug this catches: writing the all-zero blocks of a data extent
// allocates them in the destination (a 2 GiB zeroed region of a disk costs
// 2 GiB instead of nothing), though the content stays the same.
func TestCopyLeavesAllZeroBlocksInsideDataUnwritten(t *testing.T) {
	needHoles(t)
	const blk = DefaultBlockSize
	size := int64(8 << 20)
	src := makeSparse(t, size, map[int64][]byte{
		0:           bytes.Repeat([]byte{'A'}, blk),
		blk:         make([]byte, 2<<20), // written zeros: allocated, inside the data
		blk + 2<<20: bytes.Repeat([]byte{'B'}, blk),
	})
	if ext := extentsOf(t, src, size); len(ext) != 1 || ext[0] != (Extent{0, 2<<20 + 2*blk}) {
		t.Fatalf("fixture: source extents %+v, want one of %d bytes from 0", ext, 2<<20+2*blk)
	}
	dst, st := copyTo(t, src, CopyOptions{})
	sameContent(t, src, dst)
	want := Stats{Size: size, DataWritten: 2 * blk, ZeroSkipped: 2 << 20, HoleBytes: size - 2<<20 - 2*blk, ExtentsFound: 1}
	if st != want {
		t.Errorf("stats %+v\nwant  %+v", st, want)
	}
	for _, e := range extentsOf(t, dst, size) {
		if e.Off < blk+2<<20 && e.End() > blk {
			t.Errorf("destination has data at %+v, inside the zero region [%d, %d) that must stay a hole", e, blk, blk+2<<20)
		}
	}
	if a := allocated(t, dst); a > 2*blk+allocSlack {
		t.Errorf("destination allocates %d bytes; the copy must allocate only the %d data bytes", a, 2*blk)
	}
}

func TestCopyOfASourceEndingInAHoleHasTheFullSizeAndHash(t *testing.T) {
	needHoles(t)
	size := int64(5<<20 + 123)
	data := bytes.Repeat([]byte("end-in-hole-"), 1<<17)[:1<<20]
	src := makeSparse(t, size, map[int64][]byte{0: data})
	h := sha256.New()
	var seen []int64
	dst, st := copyTo(t, src, CopyOptions{Hashes: []io.Writer{h}, Progress: func(d int64) { seen = append(seen, d) }})
	sameContent(t, src, dst)
	whole, _ := os.ReadFile(src)
	if sum := sha256.Sum256(whole); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Error("hash misses the trailing hole: it differs from the file's sha256")
	}
	want := Stats{Size: size, DataWritten: 1 << 20, HoleBytes: size - 1<<20, ExtentsFound: 1}
	if st != want {
		t.Errorf("stats %+v\nwant  %+v", st, want)
	}
	if fi, _ := os.Stat(dst); fi.Size() != size {
		t.Errorf("destination is %d bytes, want %d", fi.Size(), size)
	}
	if len(seen) == 0 || seen[len(seen)-1] != size {
		t.Fatalf("progress %v does not end at %d", seen, size)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("progress goes back or repeats: %v", seen)
		}
	}
	// 1 MiB of data in 256 KiB blocks, then the hole: five reports.
	if len(seen) != 5 {
		t.Errorf("progress reported %d times (%v), want once per block and once for the hole", len(seen), seen)
	}
}

func TestCopyOfASourceStartingWithAHoleHashesItFirst(t *testing.T) {
	needHoles(t)
	size := int64(3 << 20)
	src := makeSparse(t, size, map[int64][]byte{2 << 20: bytes.Repeat([]byte{7}, 4096)})
	h := md5.New()
	dst, st := copyTo(t, src, CopyOptions{Hashes: []io.Writer{h}})
	sameContent(t, src, dst)
	whole, _ := os.ReadFile(src)
	if sum := md5.Sum(whole); !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Error("md5 differs from the file's")
	}
	if st.HoleBytes != size-4096 || st.DataWritten != 4096 {
		t.Errorf("stats %+v, want %d hole bytes and 4096 written", st, size-4096)
	}
}

// Blocks are aligned to the block size, not to the start of the extent,
// so a zero block that is aligned is found even when the extent is not.
func TestCopyReportsProgressOncePerBlock(t *testing.T) {
	src := makeSparse(t, 2*DefaultBlockSize, map[int64][]byte{0: bytes.Repeat([]byte{3}, 2*DefaultBlockSize)})
	var seen []int64
	copyTo(t, src, CopyOptions{Progress: func(d int64) { seen = append(seen, d) }})
	if want := fmt.Sprint([]int64{DefaultBlockSize, 2 * DefaultBlockSize}); fmt.Sprint(seen) != want {
		t.Fatalf("progress %v, want %s: once per block, no report for an empty hole", seen, want)
	}
}

func TestCopyAlignsBlocksToTheBlockSize(t *testing.T) {
	needHoles(t)
	const bs = 64 << 10
	size := int64(1 << 20)
	src := makeSparse(t, size, map[int64][]byte{
		4096:   bytes.Repeat([]byte{'x'}, bs-4096),
		bs:     make([]byte, bs), // written zeros
		2 * bs: bytes.Repeat([]byte{'y'}, 4096),
	})
	if ext := extentsOf(t, src, size); len(ext) != 1 || ext[0] != (Extent{4096, 2 * bs}) {
		t.Fatalf("fixture: source extents %+v", ext)
	}
	var seen []int64
	dst, st := copyTo(t, src, CopyOptions{BlockSize: bs, Progress: func(d int64) { seen = append(seen, d) }})
	sameContent(t, src, dst)
	if st.ZeroSkipped != bs || st.DataWritten != bs {
		t.Errorf("stats %+v, want the aligned zero block [%d, %d) skipped and %d bytes written", st, bs, 2*bs, bs)
	}
	// hole [0,4096), [4096,64K), [64K,128K), [128K,132K), trailing hole
	want := []int64{4096, bs, 2 * bs, 2*bs + 4096, size}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("progress %v, want %v (blocks ending on block-size boundaries)", seen, want)
	}
}

func TestCopyOfARangeClipsExtentsThatCrossItsEnds(t *testing.T) {
	needHoles(t)
	disk := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB of data
	src := makeSparse(t, 8<<20, map[int64][]byte{0: disk, 6 << 20: disk[:4096]})
	dst, st := copyTo(t, src, CopyOptions{SrcOffset: 1 << 20, Size: 2 << 20})
	got, _ := os.ReadFile(dst)
	want := append(append([]byte{}, disk[1<<20:]...), make([]byte, 1<<20)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("range copy differs (%d bytes)", len(got))
	}
	if w := (Stats{Size: 2 << 20, DataWritten: 1 << 20, HoleBytes: 1 << 20, ExtentsFound: 1}); st != w {
		t.Errorf("stats %+v\nwant  %+v", st, w)
	}
	// A range that starts where the data ends is all hole: no extent, not
	// even an empty one.
	_, st = copyTo(t, src, CopyOptions{SrcOffset: 2 << 20, Size: 2 << 20})
	if st.ExtentsFound != 0 || st.HoleBytes != 2<<20 {
		t.Errorf("hole range: stats %+v", st)
	}
}

func TestCopyToTheEndFromAnOffset(t *testing.T) {
	src := makeSparse(t, 3<<20, map[int64][]byte{0: []byte("head"), 3<<20 - 4: []byte("tail")})
	dst, st := copyTo(t, src, CopyOptions{SrcOffset: 1 << 20})
	got, _ := os.ReadFile(dst)
	if int64(len(got)) != 2<<20 || st.Size != 2<<20 || string(got[len(got)-4:]) != "tail" {
		t.Fatalf("copied %d bytes (stats %+v), want the last 2 MiB ending in tail", len(got), st)
	}
}

func TestCopyRejectsAnOffsetBeyondTheEnd(t *testing.T) {
	src := makeSparse(t, 1<<20, map[int64][]byte{0: []byte("x")})
	in, _ := os.Open(src)
	defer in.Close()
	for _, o := range []CopyOptions{{SrcOffset: 2 << 20}, {SrcOffset: -1, Size: 10}} {
		out, _ := os.Create(filepath.Join(t.TempDir(), "d"))
		_, err := Copy(context.Background(), out, in, o)
		out.Close()
		if err == nil || !strings.Contains(err.Error(), "beyond the end") || !strings.Contains(err.Error(), src) {
			t.Errorf("offset %d: err = %v, want it to name %s and say beyond the end", o.SrcOffset, err, src)
		}
	}
	// An offset right at the end copies nothing and is fine.
	if _, st := copyTo(t, src, CopyOptions{SrcOffset: 1 << 20}); st.Size != 0 {
		t.Errorf("offset at the end: %+v", st)
	}
}

func TestCopyHashesWithSeveralHashesAtOnce(t *testing.T) {
	size := int64(4<<20 + 17)
	src := makeSparse(t, size, map[int64][]byte{1 << 20: bytes.Repeat([]byte("md5+sha"), 1<<15), size - 3: []byte("end")})
	m, s := md5.New(), sha256.New()
	f, _ := os.Open(src)
	defer f.Close()
	st, err := HashFile(context.Background(), f, CopyOptions{Hashes: []io.Writer{m, s}})
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(src)
	mw, sw := md5.Sum(whole), sha256.Sum256(whole)
	if !bytes.Equal(m.Sum(nil), mw[:]) || !bytes.Equal(s.Sum(nil), sw[:]) {
		t.Error("md5 or sha256 differ from the file's")
	}
	if st.Size != size || st.DataWritten != 0 || st.ZeroSkipped != 0 {
		t.Errorf("hashing only: stats %+v, want nothing written or skipped", st)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestCopyFailsWhenAHashWriterFails(t *testing.T) {
	holeFirst := makeSparse(t, 2<<20, map[int64][]byte{1 << 20: []byte("after a hole")})
	holeLast := makeSparse(t, 2<<20, map[int64][]byte{0: []byte("before a hole")})
	boom := errors.New("boom")
	for name, hs := range map[string][]io.Writer{
		"one writer":           {failingWriter{boom}},
		"second of two":        {sha256.New(), failingWriter{boom}},
		"first of two":         {failingWriter{boom}, md5.New()},
		"both, first reported": {failingWriter{boom}, failingWriter{boom}},
	} {
		for _, src := range []string{holeFirst, holeLast} {
			f, _ := os.Open(src)
			_, err := HashFile(context.Background(), f, CopyOptions{Hashes: hs})
			f.Close()
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "checksum "+src) {
				t.Errorf("%s, %s: err = %v, want boom, naming the file", name, filepath.Base(filepath.Dir(src)), err)
			}
		}
	}
}

func TestParallelWriterWritesEverySliceToEveryWriter(t *testing.T) {
	a, b := sha256.New(), sha256.New()
	p := newParallelWriter([]io.Writer{a, b})
	for _, s := range []string{"one", "two", "three"} {
		if n, err := p.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	p.Close()
	p.Close() // twice is fine
	want := sha256.Sum256([]byte("onetwothree"))
	for _, h := range []hash.Hash{a, b} {
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Error("a writer missed or reordered a slice")
		}
	}
	boom := errors.New("boom")
	q := newParallelWriter([]io.Writer{sha256.New(), failingWriter{boom}})
	defer q.Close()
	if n, err := q.Write([]byte("x")); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("failing writer: Write = %d, %v; want 0, boom", n, err)
	}
}

func TestCopyFileRefusesAnExistingDestination(t *testing.T) {
	src := makeSparse(t, 1<<20, map[int64][]byte{0: []byte("new")})
	dst := filepath.Join(t.TempDir(), "exists.raw")
	os.WriteFile(dst, []byte("keep me"), 0o644)
	if _, err := CopyFile(context.Background(), src, dst, CopyOptions{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("err = %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep me" {
		t.Fatalf("existing destination changed to %q", b)
	}
	if _, err := CopyFile(context.Background(), filepath.Join(t.TempDir(), "missing"), filepath.Join(t.TempDir(), "d"), CopyOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing source: err = %v", err)
	}
}

func TestCopyFileRemovesTheDestinationWhenCancelled(t *testing.T) {
	src := makeSparse(t, 4<<20, map[int64][]byte{0: bytes.Repeat([]byte{1}, 4<<20)})
	dst := filepath.Join(t.TempDir(), "d.raw")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := CopyFile(ctx, src, dst, CopyOptions{Progress: func(done int64) {
		if done >= 1<<20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("half-written destination left: %v", err)
	}
	// Done right, it is identical.
	st, err := CopyFile(context.Background(), src, dst, CopyOptions{})
	if err != nil || st.DataWritten != 4<<20 {
		t.Fatalf("%+v %v", st, err)
	}
	sameContent(t, src, dst)
}

func TestDataExtentsStopsAtTheGivenSizeAndRewinds(t *testing.T) {
	needHoles(t)
	p := makeSparse(t, 8<<20, map[int64][]byte{0: bytes.Repeat([]byte("d"), 2<<20), 6 << 20: []byte("late")})
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		size int64
		want string
	}{
		{1 << 20, "[{0 1048576}]"},                // extent clipped at size
		{4 << 20, "[{0 2097152}]"},                // data after size ignored
		{6 << 20, "[{0 2097152}]"},                // data exactly at size ignored
		{8 << 20, "[{0 2097152} {6291456 4096}]"}, // both
		{0, "[]"},
	} {
		f.Seek(12345, io.SeekStart)
		ext, err := DataExtents(f, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ext); got != tc.want {
			t.Errorf("DataExtents(size %d) = %s, want %s", tc.size, got, tc.want)
		}
		if tc.size > 0 {
			if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
				t.Errorf("size %d: file offset left at %d, want 0", tc.size, off)
			}
		}
	}
}

func TestDataBytesSumsExtentLengths(t *testing.T) {
	if n := DataBytes([]Extent{{0, 10}, {100, 5}}); n != 15 {
		t.Fatalf("DataBytes = %d, want 15", n)
	}
	if (Extent{Off: 7, Len: 3}).End() != 10 {
		t.Fatal("End is not Off+Len")
	}
}
