package ociimage

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// chunkProxy forwards to a registry, records the largest PATCH, and cuts
// the second PATCH after half its bytes (a connection dropped mid-chunk).
type chunkProxy struct {
	rp       *httputil.ReverseProxy
	mu       sync.Mutex
	patches  int
	maxPatch int64
	statuses int // GETs of an upload (resume)
	cutAll   bool
	cut      int // with cutAll false: the PATCH to cut (default the second)
}

// counts returns the PATCHes, the largest and the status reads so far.
func (c *chunkProxy) counts() (patches int, maxPatch int64, statuses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.patches, c.maxPatch, c.statuses
}

func (c *chunkProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/blobs/uploads/") {
		c.mu.Lock()
		switch r.Method {
		case http.MethodPatch:
			c.patches++
			c.maxPatch = max(c.maxPatch, r.ContentLength)
			if c.patches == cmp.Or(c.cut, 2) || c.cutAll {
				c.mu.Unlock()
				io.CopyN(io.Discard, r.Body, r.ContentLength/2)
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			}
		case http.MethodGet:
			c.statuses++
		}
		c.mu.Unlock()
	}
	c.rp.ServeHTTP(w, r)
}

// A chunk that fails every time ends the push after chunkAttempts tries,
// each resumed, with an error naming the bytes.
func TestAChunkThatAlwaysFailsEndsAfterItsAttempts(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	u, _ := url.Parse("http://" + reg.Host)
	cp := &chunkProxy{rp: httputil.NewSingleHostReverseProxy(u), cutAll: true}
	srv := httptest.NewServer(cp)
	t.Cleanup(srv.Close)
	fx := makeEntries(t, 1<<20)
	p := mustPlan(t, fx.entries[:1], testOptions())
	_, err := Publish(context.Background(), p, Destination{Repository: strings.TrimPrefix(srv.URL, "http://") + "/os/cut", LockDir: t.TempDir(),
		Settle: time.Millisecond, ChunkSize: 256 << 10, Backoff: &fastBackoff})
	if err == nil || !strings.Contains(err.Error(), "bytes 0-262143 after 6 attempts") || strings.Contains(err.Error(), "_state=") {
		t.Fatalf("error %v", err)
	}
	if patches, _, statuses := cp.counts(); patches != chunkAttempts || statuses != chunkAttempts-1 {
		t.Fatalf("%d PATCHes, %d status reads; want %d and %d", patches, statuses, chunkAttempts, chunkAttempts-1)
	}
}

// Layers over the chunk size go in chunks; a chunk cut off mid-way is
// resumed from what the registry holds, not sent again from the start of
// the blob, and the registry ends with the file's bytes.
func TestLargeLayersGoInChunksAndAFailedChunkResumes(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	u, _ := url.Parse("http://" + reg.Host)
	cp := &chunkProxy{rp: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(cp)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	fx := makeEntries(t, 2<<20)
	// A 2 MiB raw disk; kernel, initramfs and rootfs (300 KiB, 500 KiB,
	// 1 MiB): four layers over the chunk size.
	p := mustPlan(t, fx.entries[:2], testOptions())
	const chunk = 256 << 10
	res := mustPublish(t, p, Destination{Repository: host + "/os/chunked", LockDir: t.TempDir(), Settle: time.Millisecond, ChunkSize: chunk, Backoff: &fastBackoff})
	patches, maxPatch, statuses := cp.counts()
	if maxPatch > chunk || patches < 2<<20/chunk {
		t.Fatalf("%d PATCHes, the largest %d bytes; want chunks of at most %d", patches, maxPatch, chunk)
	}
	if statuses != 1 {
		t.Fatalf("%d upload status reads; want one, to resume the cut chunk", statuses)
	}
	// Every blob went once, plus at most the cut chunk again.
	_, total := uniqueBlobs(p)
	if limit := total + chunk; res.BytesSent > limit {
		t.Fatalf("sent %d bytes for %d bytes of blobs", res.BytesSent, total)
	}
	for _, m := range p.Manifests {
		checkImage(t, reg.Host+"/os/chunked@"+m.Digest.String(), m)
	}
}

// Without a chunk size, a layer over resumeOver goes in one request whose
// failure is resumed from what the registry kept; distribution keeps
// nothing of a cut request, so the layer goes whole again, once: a second
// loss is an error that says to set a chunk size, not three more whole
// sends.
func TestAHugeLayerIsNeverSentWholeMoreThanTwice(t *testing.T) {
	t.Parallel()
	for _, cutAll := range []bool{false, true} {
		reg := testsvc.StartRegistry(t)
		u, _ := url.Parse("http://" + reg.Host)
		cp := &chunkProxy{rp: httputil.NewSingleHostReverseProxy(u), cut: 1, cutAll: cutAll}
		srv := httptest.NewServer(cp)
		t.Cleanup(srv.Close)
		fx := makeEntries(t, 2<<20)
		p := mustPlan(t, fx.entries[:1], testOptions()) // one 2 MiB raw disk
		d := Destination{Repository: strings.TrimPrefix(srv.URL, "http://") + "/os/huge", LockDir: t.TempDir(), Settle: time.Millisecond,
			Backoff: &fastBackoff, resumeOver: 512 << 10}
		res, err := Publish(context.Background(), p, d)
		patches, maxPatch, statuses := cp.counts()
		if cutAll {
			if err == nil || !strings.Contains(err.Error(), "kept nothing of 2097152 bytes sent whole, twice") || !strings.Contains(err.Error(), "chunk size") || strings.Contains(err.Error(), "_state=") || patches != 2 || statuses != 2 {
				t.Fatalf("every request cut: %d PATCHes, %d status reads, error %v", patches, statuses, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if maxPatch != 2<<20 || statuses != 1 || res.BytesSent > 2*(2<<20)+1024 {
			t.Fatalf("%d PATCHes (largest %d), %d status reads, %d bytes sent", patches, maxPatch, statuses, res.BytesSent)
		}
		checkImage(t, reg.Host+"/os/huge@"+p.Manifests[0].Digest.String(), p.Manifests[0])
	}
}

// A file changed after the builder recorded its sha256 is refused by the
// registry when the chunked upload closes (PUT ?digest=): the push stops
// there, and nothing sends the layer again in one piece.
func TestAChunkedLayerWhoseBytesChangedIsRefusedAtTheEnd(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	u, _ := url.Parse("http://" + reg.Host)
	cp := &chunkProxy{rp: httputil.NewSingleHostReverseProxy(u), cut: -1}
	srv := httptest.NewServer(cp)
	t.Cleanup(srv.Close)
	fx := makeEntries(t, 1<<20)
	p := mustPlan(t, fx.entries[:1], testOptions())
	src := p.Manifests[0].Layers[0].Source
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	b[7] ^= 1
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	const chunk = 256 << 10
	_, err = Publish(context.Background(), p, Destination{Repository: strings.TrimPrefix(srv.URL, "http://") + "/os/changed", LockDir: t.TempDir(),
		Settle: time.Millisecond, ChunkSize: chunk, Backoff: &fastBackoff})
	if err == nil || !strings.Contains(err.Error(), "DIGEST_INVALID") {
		t.Fatalf("error %v", err)
	}
	if patches, maxPatch, _ := cp.counts(); maxPatch > chunk || patches != 4 {
		t.Fatalf("%d PATCHes, the largest %d bytes: the layer went again after the refusal", patches, maxPatch)
	}
}
