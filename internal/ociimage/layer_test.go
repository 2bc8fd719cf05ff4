package ociimage

import (
	"errors"
	"io"
	"testing"
)

// failingReader returns some bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	k := min(len(b), r.n)
	r.n -= k
	return k, nil
}

// TestCompressToReturnsAReadError: a layer file that fails while it is
// being compressed fails the layer, with the reader's error, for both
// compressors.
func TestCompressToReturnsAReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk read failed")
	for _, c := range []string{CompressionGzip, CompressionZstd} {
		if err := compressTo(io.Discard, &failingReader{n: 3 << 20, err: boom}, c); !errors.Is(err, boom) {
			t.Errorf("%s: err = %v, want the read error", c, err)
		}
	}
}
