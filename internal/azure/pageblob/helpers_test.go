package pageblob

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	azpageblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

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
	if isPutPage(r) {
		n, _ := strconv.ParseInt(header(r, "Content-Length"), 10, 64)
		c.n.Add(1)
		c.bytes.Add(n)
	}
	return req.Next()
}

// isPutPage tells a Put Page that writes pages (not one that clears them).
func isPutPage(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page" && header(r, "x-ms-page-write") == "update"
}

// putPageMD5 does what Azure does and Azurite does not: a Put Page whose
// Content-MD5 is missing or is not the MD5 of its body is answered 400
// Md5Mismatch (so a wrong transactional MD5 fails every test through
// target).
type putPageMD5 struct{}

func (putPageMD5) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if !isPutPage(r) {
		return req.Next()
	}
	var body []byte
	if req.Body() != nil {
		b, err := io.ReadAll(req.Body())
		if err != nil {
			return nil, err
		}
		if err := req.RewindBody(); err != nil {
			return nil, err
		}
		body = b
	}
	sum := md5.Sum(body)
	if got, want := header(r, "Content-MD5"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		msg := fmt.Sprintf("Put Page %s: Content-MD5 %q, but the MD5 of its %d bytes is %q", header(r, "x-ms-range"), got, len(body), want)
		return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Md5Mismatch", Request: r,
			Header: http.Header{"X-Ms-Error-Code": {"Md5Mismatch"}, "Content-Type": {"text/plain"}},
			Body:   io.NopCloser(strings.NewReader(msg))}, nil
	}
	return req.Next()
}

func target(t testing.TB, az *testsvc.Azurite, container, name string, createContainer bool, extra ...policy.Policy) Target {
	t.Helper()
	tg, err := NewTarget(ClientConfig{ConnectionString: az.ConnectionString, Container: container, BlobName: name,
		Retry: fastRetry, PerRetryPolicies: append([]policy.Policy{putPageMD5{}}, extra...), CreateContainer: createContainer})
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

// expectMatches checks the blob against the source byte for byte, and its
// Content-MD5 and the MD5 of its bytes against want. A page blob reads as
// zeros wherever no page was written, so the pages the service lists
// (Get Page Ranges, asked here directly, not through the code under test)
// are downloaded and compared, and the source must be zero everywhere
// else: the same verdict as downloading the whole blob, without streaming
// gigabytes of zeros out of Azurite.
func expectMatches(t *testing.T, tg Target, src *Source, want []byte) {
	t.Helper()
	ctx := context.Background()
	props, err := tg.Blob.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.ContentLength == nil || *props.ContentLength != src.Size() {
		t.Fatalf("blob length %v, want %d", props.ContentLength, src.Size())
	}
	if !bytes.Equal(props.ContentMD5, want) {
		t.Fatalf("Content-MD5 %x, want %x", props.ContentMD5, want)
	}
	var pages []sparse.Extent
	for pager := tg.Blob.NewGetPageRangesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.PageRange {
			pages = append(pages, sparse.Extent{Off: *r.Start, Len: *r.End - *r.Start + 1})
		}
	}
	slices.SortFunc(pages, func(a, b sparse.Extent) int { return cmp.Compare(a.Off, b.Off) })
	h := md5.New()
	got := make([]byte, 4<<20)
	exp := make([]byte, 4<<20)
	zero := make([]byte, 4<<20)
	// compare feeds [off, end) of the blob (downloaded, or zeros) and of
	// the source through the check and the hash.
	compare := func(off, end int64, blobHas bool) {
		for off < end {
			n := min(int64(len(got)), end-off)
			if blobHas {
				b, err := download(ctx, tg, off, n)
				if err != nil {
					t.Fatalf("download at %d: %v", off, err)
				}
				copy(got, b)
			} else {
				copy(got, zero)
			}
			if _, err := src.ReadAt(exp[:n], off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:n], exp[:n]) {
				for i := range n {
					if got[i] != exp[i] {
						t.Fatalf("blob differs from the source at byte %d: %#x, want %#x (page written: %v)", off+i, got[i], exp[i], blobHas)
					}
				}
			}
			h.Write(got[:n])
			off += n
		}
	}
	pos := int64(0)
	for _, p := range pages {
		if p.Off < pos || p.End() > src.Size() {
			t.Fatalf("page range %+v overlaps another or lies beyond the blob's %d bytes", p, src.Size())
		}
		compare(pos, p.Off, false)
		compare(p.Off, p.End(), true)
		pos = p.End()
	}
	compare(pos, src.Size(), false)
	if sum := h.Sum(nil); !bytes.Equal(sum, want) {
		t.Fatalf("MD5 of the blob's bytes %x, want %x", sum, want)
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
	sum := md5.Sum(b)
	if _, err := tg.Blob.UploadPages(context.Background(), nopCloser(b), blob.HTTPRange{Offset: off, Count: int64(len(b))},
		&azpageblob.UploadPagesOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum[:])}); err != nil {
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
