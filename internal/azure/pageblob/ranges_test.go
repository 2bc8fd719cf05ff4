package pageblob

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

type ext = sparse.Extent

func TestPageAlignWidensToPagesAndMerges(t *testing.T) {
	t.Parallel()
	got := pageAlign([]ext{{Off: 1000, Len: 10}, {Off: 0, Len: 1}, {Off: 1030, Len: 600}, {Off: 5000, Len: 100}, {Off: 9000, Len: 0}}, 5050)
	want := []ext{{Off: 0, Len: 512}, {Off: 512, Len: 1536}, {Off: 4608, Len: 442}}
	want = merge(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// An extent ending one byte short of a page boundary ends at it.
	if got := pageAlign([]ext{{Off: 2048, Len: 1023}}, 8192); !reflect.DeepEqual(got, []ext{{Off: 2048, Len: 1024}}) {
		t.Fatalf("extent [2048, 3071): got %v, want [2048, 3072)", got)
	}
}

func TestMergeJoinsOverlappingAndAdjacentRanges(t *testing.T) {
	t.Parallel()
	got := merge([]ext{{Off: 10, Len: 5}, {Off: 0, Len: 10}, {Off: 12, Len: 1}, {Off: 20, Len: 5}, {Off: 30, Len: 0}})
	want := []ext{{Off: 0, Len: 15}, {Off: 20, Len: 5}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// A range reaching past the one it overlaps extends it (not from 0).
	if got := merge([]ext{{Off: 100, Len: 10}, {Off: 105, Len: 15}}); !reflect.DeepEqual(got, []ext{{Off: 100, Len: 20}}) {
		t.Fatalf("[100, 110) and [105, 120): got %v, want [100, 120)", got)
	}
}

func TestNonZeroRunsSkipZeroPagesAndSplitAt4MiB(t *testing.T) {
	t.Parallel()
	b := make([]byte, 9<<20)
	b[0] = 1
	b[511] = 1
	b[3*512] = 1     // page 3
	b[4*512+100] = 1 // page 4: run of pages 3-4
	b[len(b)-1] = 1  // last page
	for i := 1 << 20; i < 7<<20; i += 512 {
		b[i] = 2 // 6 MiB of data: split at 4 MiB
	}
	got := nonZeroRuns(b, 1<<30)
	want := []ext{{Off: 1 << 30, Len: 512}, {Off: 1<<30 + 1536, Len: 1024}, {Off: 1<<30 + 1<<20, Len: 4 << 20}, {Off: 1<<30 + 5<<20, Len: 2 << 20}, {Off: 1<<30 + 9<<20 - 512, Len: 512}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// A short tail (the end of the blob) counts as a page.
	if got := nonZeroRuns([]byte{0, 0, 3}, 0); !reflect.DeepEqual(got, []ext{{Off: 0, Len: 3}}) {
		t.Fatalf("tail: %v", got)
	}
	if got := nonZeroRuns(make([]byte, 4096), 0); got != nil {
		t.Fatalf("zeros: %v", got)
	}
}

func TestCoversNeedsOneRangeHoldingAll(t *testing.T) {
	t.Parallel()
	rs := []ext{{Off: 0, Len: 100}, {Off: 100 + 1, Len: 50}, {Off: 300, Len: 10}}
	for _, c := range []struct {
		r    ext
		want bool
	}{
		{ext{Off: 0, Len: 100}, true}, {ext{Off: 10, Len: 90}, true}, {ext{Off: 99, Len: 2}, false},
		{ext{Off: 101, Len: 50}, true}, {ext{Off: 101, Len: 51}, false}, {ext{Off: 200, Len: 1}, false},
		{ext{Off: 305, Len: 5}, true}, {ext{Off: 310, Len: 1}, false},
	} {
		if got := covers(rs, c.r); got != c.want {
			t.Errorf("covers(%v) = %v, want %v", c.r, got, c.want)
		}
	}
	if covers(nil, ext{Off: 0, Len: 1}) {
		t.Error("nothing covers something")
	}
}

func TestUncoveredListsPresentPagesOutsideTheKeptRuns(t *testing.T) {
	t.Parallel()
	present := []ext{{Off: 0, Len: 1000}, {Off: 2000, Len: 100}, {Off: 5000, Len: 500}}
	keep := []ext{{Off: 100, Len: 100}, {Off: 300, Len: 50}, {Off: 2000, Len: 100}}
	got := uncovered(present, 50, 5100, keep)
	want := []ext{{Off: 50, Len: 50}, {Off: 200, Len: 100}, {Off: 350, Len: 650}, {Off: 5000, Len: 100}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := uncovered(present, 1000, 2000, nil); got != nil {
		t.Fatalf("between ranges: %v", got)
	}
	if got := uncovered(present, 0, 1000, []ext{{Off: 0, Len: 1000}}); got != nil {
		t.Fatalf("all kept: %v", got)
	}
}

func TestSplitMaxCutsLongRanges(t *testing.T) {
	t.Parallel()
	got := splitMax([]ext{{Off: 0, Len: 10}, {Off: 20, Len: 4}}, 4)
	want := []ext{{Off: 0, Len: 4}, {Off: 4, Len: 4}, {Off: 8, Len: 2}, {Off: 20, Len: 4}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRawSourceReadsDataPaddingAndFooter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := randBytes(9, 3000)
	raw := testutil.SparseFile(t, filepath.Join(dir, "d.raw"), 2<<20+3000, map[int64][]byte{2 << 20: data})
	s, err := OpenRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Size() != 3<<20+512 || !s.IsRaw() {
		t.Fatalf("size %d raw %v", s.Size(), s.IsRaw())
	}
	all, err := io.ReadAll(io.NewSectionReader(s, 0, s.Size()+100))
	if err != nil || int64(len(all)) != s.Size() {
		t.Fatalf("read %d bytes: %v", len(all), err)
	}
	if !bytes.Equal(all[2<<20:2<<20+3000], data) || !sparse.IsZero(all[:2<<20]) || !sparse.IsZero(all[2<<20+3000:3<<20]) {
		t.Fatal("data or padding wrong")
	}
	ft, _ := s.Footer()
	if !bytes.Equal(all[3<<20:], ft) {
		t.Fatal("the stream does not end in the footer")
	}
	f, err := vhd.Decode(ft)
	if err != nil || f.CurrentSize != 3<<20 || f.DiskType != vhd.DiskTypeFixed {
		t.Fatalf("footer %+v %v", f, err)
	}
	// A read that straddles data, padding and footer.
	buf := make([]byte, 1<<20-1990)
	if n, err := s.ReadAt(buf, 2<<20+2000); n != len(buf) || err != nil {
		t.Fatalf("straddling read %d %v", n, err)
	}
	if !bytes.Equal(buf[:1000], data[2000:]) || !bytes.Equal(buf[len(buf)-10:], ft[:10]) {
		t.Fatal("straddling read wrong")
	}
	if n, err := s.ReadAt(buf[:10], s.Size()); n != 0 || err != io.EOF {
		t.Fatalf("read at end: %d %v", n, err)
	}
	wantExt := []ext{{Off: 2 << 20, Len: 3000}, {Off: 3 << 20, Len: 512}}
	if got := s.Extents(); len(got) < 2 || got[len(got)-1] != wantExt[1] {
		t.Fatalf("extents %v, want the footer last", got)
	}
	// The footer of an earlier upload of the same disk is adopted; another
	// disk's is not.
	other, _ := vhd.NewFixed(3<<20, timeZero)
	ob := other.Marshal()
	if !s.useFooter(ob[:]) {
		t.Fatal("same-size footer not adopted")
	}
	if got, _ := s.Footer(); !bytes.Equal(got, ob[:]) {
		t.Fatal("adopted footer not used")
	}
	wrong, _ := vhd.NewFixed(4<<20, timeZero)
	wb := wrong.Marshal()
	if s.useFooter(wb[:]) || s.useFooter(make([]byte, 512)) {
		t.Fatal("a footer of another size or garbage was adopted")
	}
}

// A disk that shrinks under the upload is a read error naming it, not
// zeros and not an endless retry of the missing bytes.
func TestASourceFileThatShrankIsAReadError(t *testing.T) {
	t.Parallel()
	raw := testutil.SparseFile(t, filepath.Join(t.TempDir(), "d.raw"), 2<<20, map[int64][]byte{0: randBytes(10, 4096)})
	s, err := OpenRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Truncate(raw, 1<<20); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadAt(make([]byte, 4096), 1<<20+4096)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "read "+raw) {
			t.Fatalf("reading past the new end: %v, want a read error naming %s", err, raw)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadAt of a file that shrank did not return")
	}
}

func TestDefaultParallelIsAzcopysRule(t *testing.T) {
	t.Parallel()
	// azcopy: 16 per CPU, at least 32, at most 300.
	for cpus, want := range map[int]int{1: 32, 2: 32, 3: 48, 4: 64, 8: 128, 18: 288, 19: 300, 64: 300} {
		if got := parallelFor(cpus); got != want {
			t.Errorf("parallelFor(%d) = %d, want %d", cpus, got, want)
		}
	}
	if got, want := DefaultParallel(), parallelFor(runtime.NumCPU()); got != want {
		t.Errorf("DefaultParallel() = %d on %d CPUs, want %d", got, runtime.NumCPU(), want)
	}
}
