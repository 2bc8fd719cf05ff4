package ociimage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// blobServer answers like a registry's blob endpoints: HEAD of a blob it
// has (with its size), uploads with the status asked for in ?status= after
// reading the whole body, and "?drop" cuts the connection instead.
func blobServer(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if _, drop := r.URL.Query()["drop"]; drop {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if r.Method == http.MethodHead || r.Method == http.MethodGet {
			if strings.HasSuffix(r.URL.Path, "/missing") {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Length", "1234")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				w.Write(make([]byte, 1234))
			}
			return
		}
		status := http.StatusCreated
		if s := r.URL.Query().Get("status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// fileAt opens a sparse file of n bytes positioned at off (the transport
// closes each request's body, so every request gets its own).
func fileAt(t testing.TB, n, off int64) *os.File {
	t.Helper()
	f, err := os.Open(testutil.SparseFile(t, filepath.Join(t.TempDir(), "blob"), n, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitFor polls cond every millisecond for up to 10 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

func TestTheTransportCountsBlobUploadsTheirBytesAndWhatIsDone(t *testing.T) {
	srv := blobServer(t)
	ct := &countingTransport{base: &http.Transport{}, allowHTTP: true}
	step := func(what, method, path string, body io.Reader, length int64, wantBlobs, wantBytes, wantDone int64) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if length >= 0 {
			req.ContentLength = length
		}
		resp, err := ct.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		blobs, sent := ct.blobs.Load(), ct.bytes.Load()
		if blobs != wantBlobs || sent != wantBytes || ct.progress() != wantDone {
			t.Fatalf("after %s: %d blob uploads, %d bytes sent, %d done; want %d, %d, %d", what, blobs, sent, ct.progress(), wantBlobs, wantBytes, wantDone)
		}
	}
	step("HEAD of a blob the registry has: its size is done, nothing sent", http.MethodHead, "/v2/r/blobs/sha256:aa", nil, -1, 0, 0, 1234)
	step("HEAD of a blob the registry lacks", http.MethodHead, "/v2/r/blobs/missing", nil, -1, 0, 0, 1234)
	step("GET of a blob (a download, not an upload)", http.MethodGet, "/v2/r/blobs/sha256:aa", nil, -1, 0, 0, 1234)
	step("HEAD of a manifest", http.MethodHead, "/v2/r/manifests/t", nil, -1, 0, 0, 1234)
	step("PATCH of a file", http.MethodPatch, "/v2/r/blobs/uploads/u1?status=202", fileAt(t, 1000, 0), 1000, 1, 1000, 2234)
	step("PUT of a file", http.MethodPut, "/v2/r/blobs/uploads/u2?digest=x", fileAt(t, 100, 0), 100, 2, 1100, 2334)
	step("PUT of a file answered 500: sent, not done", http.MethodPut, "/v2/r/blobs/uploads/u3?status=500", fileAt(t, 10, 0), 10, 3, 1110, 2334)
	step("PUT of a file answered 300: sent, not done", http.MethodPut, "/v2/r/blobs/uploads/u4?status=300", fileAt(t, 10, 0), 10, 4, 1120, 2334)
	step("PUT closing an upload, no body: no blob", http.MethodPut, "/v2/r/blobs/uploads/u5?digest=x", http.NoBody, -1, 4, 1120, 2334)
	step("PUT of a manifest: no blob", http.MethodPut, "/v2/r/manifests/t", strings.NewReader(`{"schemaVersion":2}`), -1, 4, 1120, 2334)
	step("PATCH of a stream", http.MethodPatch, "/v2/r/blobs/uploads/u6", io.NopCloser(strings.NewReader("0123456789")), 10, 5, 1130, 2344)
	step("PATCH of a stream answered 500: sent, not done", http.MethodPatch, "/v2/r/blobs/uploads/u7?status=500", io.NopCloser(strings.NewReader("0123456789")), 10, 6, 1140, 2344)
	step("PATCH of a stream answered 300: sent, not done", http.MethodPatch, "/v2/r/blobs/uploads/u8?status=300", io.NopCloser(strings.NewReader("0123456789")), 10, 7, 1150, 2344)
	step("PATCH of a stream cut by the server: sent, not done", http.MethodPatch, "/v2/r/blobs/uploads/u9?drop", io.NopCloser(strings.NewReader("0123456789")), 10, 8, 1160, 2344)
}

// An upload under way counts what it has read of its file since it
// started, not the file's offset (a chunk of a file starts past its
// beginning); once net/http has sent the body and closed the file, the
// whole body counts while the registry is still to answer.
func TestProgressOfAnUploadUnderWayIsWhatItSentSinceItStarted(t *testing.T) {
	for _, c := range []struct {
		name          string
		start, length int64
		sent          func(got int64) bool
	}{
		// 256 MiB in, 32 MiB long: far more than loopback's socket buffers
		// take, so the file is still being read while the server waits.
		{"while the body goes out", 256 << 20, 32 << 20, func(got int64) bool { return got > 0 && got < 32<<20 }},
		// 64 KiB fits into the socket buffers: the body is sent and its
		// file closed before the server reads a byte.
		{"after the body went out", 256 << 20, 64 << 10, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-release
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusAccepted)
			}))
			defer srv.Close()
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()
			f := fileAt(t, c.start+c.length, c.start)
			ct := &countingTransport{base: &http.Transport{}, allowHTTP: true}
			req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/v2/r/blobs/uploads/u", f)
			req.ContentLength = c.length
			done := make(chan error, 1)
			go func() {
				resp, err := ct.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			<-started
			if c.sent != nil {
				waitFor(t, "net/http did not start reading the body", func() bool {
					off, _ := f.Seek(0, io.SeekCurrent)
					return off != c.start
				})
				if got := ct.progress(); !c.sent(got) {
					t.Errorf("progress of %d bytes from offset %d under way: %d", c.length, c.start, got)
				}
			} else {
				waitFor(t, "net/http did not close the body after sending it", func() bool {
					_, err := f.Seek(0, io.SeekCurrent)
					return err != nil
				})
				if got := ct.progress(); got != c.length {
					t.Errorf("progress of a sent %d-byte body awaiting its response: %d", c.length, got)
				}
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := ct.progress(); got != c.length {
				t.Errorf("progress after the upload: %d, want %d", got, c.length)
			}
		})
	}
}

func TestAForbiddenRegistryIsUnauthorizedAndAServerErrorIsNot(t *testing.T) {
	fx := makeEntries(t, 8<<10)
	p := mustPlan(t, fx.entries[:1], testOptions())
	for status, unauthorized := range map[int]bool{http.StatusForbidden: true, http.StatusInternalServerError: false, http.StatusTeapot: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"injected"}]}`, status)
		}))
		host := strings.TrimPrefix(srv.URL, "http://")
		_, err := Publish(context.Background(), p, Destination{Repository: host + "/os/x", LockDir: t.TempDir(), Backoff: &fastBackoff,
			Username: "builder", Password: "secret-5150"})
		srv.Close()
		if err == nil || errors.Is(err, ErrUnauthorized) != unauthorized || !strings.Contains(err.Error(), strconv.Itoa(status)) ||
			!strings.Contains(err.Error(), host+"/os/x") || strings.Contains(err.Error(), "secret-5150") {
			t.Errorf("HTTP %d: error %v; want unauthorized %v, naming the status and the repository, not the password", status, err, unauthorized)
		}
	}
}

// The last progress report is the total, however fast the push was.
func TestProgressEndsWithTheTotalWhenThePushSucceeds(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t).Host
	fx := makeEntries(t, 8<<10)
	p := mustPlan(t, fx.entries[:2], testOptions())
	var calls [][2]int64
	mustPublish(t, p, Destination{Repository: reg + "/os/progress", LockDir: t.TempDir(), Settle: time.Millisecond, progressTick: time.Hour,
		Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	_, size := uniqueBlobs(p)
	if len(calls) != 1 || calls[0] != [2]int64{size, size} {
		t.Fatalf("progress reports %v, want one of %d of %d", calls, size, size)
	}
	// Reports come while uploads are under way, too.
	calls = nil
	mustPublish(t, p, Destination{Repository: reg + "/os/progress2", LockDir: t.TempDir(), Settle: time.Millisecond, progressTick: time.Millisecond,
		Transport: slowUploads{remote.DefaultTransport}, Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if len(calls) < 2 || calls[len(calls)-1] != [2]int64{size, size} {
		t.Fatalf("progress reports %v, want some while uploading and last %d of %d", calls, size, size)
	}
}

// slowUploads holds each blob upload for 100ms.
type slowUploads struct{ base http.RoundTripper }

func (s slowUploads) RoundTrip(req *http.Request) (*http.Response, error) {
	if isBlobUpload(req) {
		time.Sleep(100 * time.Millisecond)
	}
	return s.base.RoundTrip(req)
}
