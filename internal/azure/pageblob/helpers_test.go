package pageblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// fastRetry retries quickly so fault tests do not sleep for seconds.
var fastRetry = policy.RetryOptions{MaxRetries: 10, RetryDelay: 5 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond}

// putCounter counts the Put Page requests that reach the wire, retries
// included.
type putCounter struct{ n, bytes atomic.Int64 }

func (c *putCounter) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page" && header(r, "x-ms-page-write") == "update" {
		n, _ := strconv.ParseInt(header(r, "Content-Length"), 10, 64)
		c.n.Add(1)
		c.bytes.Add(n)
	}
	return req.Next()
}

func target(t testing.TB, az *testsvc.Azurite, container, name string, createContainer bool, extra ...policy.Policy) Target {
	t.Helper()
	tg, err := NewTarget(ClientConfig{ConnectionString: az.ConnectionString, Container: container, BlobName: name,
		Retry: fastRetry, PerRetryPolicies: extra, CreateContainer: createContainer})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func mustCreateContainer(t testing.TB, tg Target) {
	t.Helper()
	cc := tg.Container
	if cc == nil {
		t.Fatal("target has no container client")
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// randBytes returns n pseudo-random bytes with no all-zero page.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(255) + 1)
	}
	return b
}

// expectMatches downloads the whole blob and compares it byte for byte
// with src, and its MD5 with want.
func expectMatches(t *testing.T, tg Target, src *Source, want []byte) {
	t.Helper()
	ctx := context.Background()
	resp, err := tg.Blob.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength == nil || *resp.ContentLength != src.Size() {
		t.Fatalf("blob length %v, want %d", resp.ContentLength, src.Size())
	}
	if !bytes.Equal(resp.ContentMD5, want) {
		t.Fatalf("Content-MD5 %x, want %x", resp.ContentMD5, want)
	}
	h := md5.New()
	got := make([]byte, 4<<20)
	exp := make([]byte, 4<<20)
	for off := int64(0); off < src.Size(); {
		n := min(int64(len(got)), src.Size()-off)
		if _, err := io.ReadFull(resp.Body, got[:n]); err != nil {
			t.Fatalf("download at %d: %v", off, err)
		}
		if _, err := src.ReadAt(exp[:n], off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:n], exp[:n]) {
			for i := range n {
				if got[i] != exp[i] {
					t.Fatalf("blob differs from the source at byte %d: %#x, want %#x", off+i, got[i], exp[i])
				}
			}
		}
		h.Write(got[:n])
		off += n
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, want) {
		t.Fatalf("MD5 of the downloaded blob %x, want %x", sum, want)
	}
}

// nonZeroPages counts the bytes in non-zero 512-byte pages of src, the
// slow obvious way.
func nonZeroPages(t *testing.T, src *Source) int64 {
	t.Helper()
	var n int64
	page := make([]byte, PageSize)
	for _, e := range src.Extents() {
		for off := e.Off / PageSize * PageSize; off < e.End(); off += PageSize {
			if _, err := src.ReadAt(page, off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !sparse.IsZero(page) {
				n += PageSize
			}
		}
	}
	return n
}

// presentRanges lists the blob's written pages.
func presentRanges(t *testing.T, tg Target) []sparse.Extent {
	t.Helper()
	rs, err := pageRanges(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func md5Of(t *testing.T, src *Source) []byte {
	t.Helper()
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(src, 0, src.Size())); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

func putPages(t *testing.T, tg Target, off int64, b []byte) {
	t.Helper()
	if _, err := tg.Blob.UploadPages(context.Background(), nopCloser(b), blob.HTTPRange{Offset: off, Count: int64(len(b))}, nil); err != nil {
		t.Fatal(err)
	}
}

func uniqueName(t *testing.T) string { return fmt.Sprintf("c%d", time.Now().UnixNano()) }

func header(r *http.Request, k string) string {
	if v, ok := r.Header[k]; ok && len(v) > 0 {
		return v[0]
	}
	return r.Header.Get(k)
}

type rsc struct{ *bytes.Reader }

func (rsc) Close() error { return nil }

func nopCloser(b []byte) rsc { return rsc{bytes.NewReader(b)} }

var timeZero = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
