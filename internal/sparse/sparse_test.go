package sparse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// makeSparse writes a sparse file of size bytes holding data at the given offsets.
func makeSparse(t *testing.T, size int64, chunks map[int64][]byte) string {
	t.Helper()
	return testutil.SparseFile(t, filepath.Join(t.TempDir(), "src.raw"), size, chunks)
}

func allocated(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return Allocated(st)
}

func TestDataExtentsFindsDataAndSkipsHoles(t *testing.T) {
	data := bytes.Repeat([]byte{0xAB}, 1<<20)
	p := makeSparse(t, 64<<20, map[int64][]byte{0: data, 32 << 20: data})
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ext, err := DataExtents(f, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Need(t, DataBytes(ext) < 64<<20, fmt.Sprintf("the filesystem of %s reports no holes (%d data bytes of 64 MiB)", p, DataBytes(ext)),
		"run the tests with TMPDIR on a filesystem with SEEK_HOLE support (ext4, xfs, btrfs, tmpfs)")
	if len(ext) != 2 || ext[0].Off != 0 || ext[1].Off > 32<<20 || ext[1].End() < 33<<20 {
		t.Fatalf("extents = %+v, want two covering [0,1MiB) and [32MiB,33MiB)", ext)
	}
}

func TestCopyPreservesContentHolesAndHash(t *testing.T) {
	data := bytes.Repeat([]byte("osimage!"), 1<<17) // 1 MiB
	zeros := make([]byte, 2<<20)
	size := int64(48<<20 + 12345) // not block aligned
	src := makeSparse(t, size, map[int64][]byte{
		4096:      data,
		16 << 20:  zeros, // allocated but zero: must become a hole
		40 << 20:  data[:777],
		size - 10: []byte("tail-bytes"),
	})
	dstPath := filepath.Join(t.TempDir(), "dst.raw")
	in, _ := os.Open(src)
	defer in.Close()
	out, err := os.Create(dstPath)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var last int64
	st, err := Copy(context.Background(), out, in, CopyOptions{Hashes: []io.Writer{h}, Progress: func(d int64) { last = d }})
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(dstPath)
	if !bytes.Equal(want, got) {
		t.Fatal("copy differs from source")
	}
	if sum := sha256.Sum256(want); !bytes.Equal(sum[:], h.Sum(nil)) {
		t.Fatal("streamed sha256 differs from the file's")
	}
	if last != size || st.Size != size {
		t.Fatalf("progress ended at %d, stats size %d; want %d", last, st.Size, size)
	}
	// The 2 MiB of written zeros are block aligned: every byte of them is
	// skipped, and the destination allocates no more than the data written.
	if st.ZeroSkipped != 2<<20 {
		t.Errorf("zero bytes skipped = %d, want the 2 MiB zero region", st.ZeroSkipped)
	}
	srcExt := extentsOf(t, src, size)
	if st.DataWritten+st.ZeroSkipped != DataBytes(srcExt) || st.HoleBytes != size-DataBytes(srcExt) {
		t.Errorf("stats %+v do not add up to the source's %d data bytes in %d", st, DataBytes(srcExt), size)
	}
	if st.DataWritten > 1<<20+3*4096+777+10 {
		t.Errorf("wrote %d bytes; want only the blocks holding data (about 1 MiB)", st.DataWritten)
	}
	if a := allocated(t, dstPath); a > st.DataWritten+allocSlack {
		t.Errorf("destination allocates %d bytes for %d bytes of data written", a, st.DataWritten)
	}
}

func TestCopyStopsWhenCancelled(t *testing.T) {
	p := makeSparse(t, 8<<20, map[int64][]byte{0: bytes.Repeat([]byte{1}, 8<<20)})
	in, _ := os.Open(p)
	defer in.Close()
	out, _ := os.Create(filepath.Join(t.TempDir(), "d"))
	defer out.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Copy(ctx, out, in, CopyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestIsZero(t *testing.T) {
	b := make([]byte, 4099)
	if !IsZero(b) {
		t.Fatal("zeros not zero")
	}
	for _, i := range []int{0, 7, 8, 4096, 4098} {
		b[i] = 1
		if IsZero(b) {
			t.Fatalf("byte %d set but IsZero", i)
		}
		b[i] = 0
	}
}

func TestCopyFromOffsetExtractsARange(t *testing.T) {
	part := bytes.Repeat([]byte("PART"), 256<<8) // 256 KiB
	p := makeSparse(t, 16<<20, map[int64][]byte{0: []byte("MBR!"), 1 << 20: part, 15 << 20: []byte("after")})
	in, _ := os.Open(p)
	defer in.Close()
	dst := filepath.Join(t.TempDir(), "part.img")
	out, _ := os.Create(dst)
	if _, err := Copy(context.Background(), out, in, CopyOptions{SrcOffset: 1 << 20, Size: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	out.Close()
	got, _ := os.ReadFile(dst)
	want := append(append([]byte{}, part...), make([]byte, 4<<20-len(part))...)
	if !bytes.Equal(got, want) {
		t.Fatalf("extracted range differs (len %d)", len(got))
	}
}
