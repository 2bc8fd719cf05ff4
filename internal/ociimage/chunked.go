package ociimage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Chunked upload with resume (OCI distribution spec, "Pushing a blob in
// chunks"): POST opens an upload, each PATCH sends one chunk with
// Content-Range, PUT ?digest= closes it. A chunk that fails (dropped
// connection, 5xx, 416) is resumed from what the registry says it holds
// (GET on the upload: Range 0-<last byte>), so no request runs longer than
// one chunk takes (GHCR cuts requests at 10 minutes) and a failure costs at
// most one chunk. go-containerregistry sends a blob in one PATCH and retries
// it whole up to five times; the layers this file sends go first, and its
// writer then finds them present.
//
// Which layers: with ChunkSize, those larger than it, in chunks of it.
// Without, those larger than resumeOver (default 2 GiB) in one PATCH (the
// file as the body: sendfile over plain HTTP, as go-containerregistry
// sends it), resumed from what the registry kept; a registry that keeps
// nothing of a cut request (distribution does not) gets the whole layer
// again once, not more: then the error says to set a chunk size.

// chunkAttempts is how often one chunk is tried (resuming each time).
const chunkAttempts = 6

// defaultResumeOver is the size above which a layer is never sent whole
// more than twice.
const defaultResumeOver = 2 << 30

func (t *registryTarget) uploadChunked(ctx context.Context, p *Plan) error {
	over := t.d.ChunkSize
	if over <= 0 {
		over = cmp.Or(t.d.resumeOver, defaultResumeOver)
	}
	var big []Layer
	seen := map[v1.Hash]bool{}
	for _, m := range p.Manifests {
		for _, l := range m.Layers {
			if l.Size > over && !seen[l.Digest] {
				seen[l.Digest] = true
				big = append(big, l)
			}
		}
	}
	if len(big) == 0 {
		return nil
	}
	rt, err := transport.NewWithContext(ctx, t.repo.Registry, t.auth, t.counter, []string{t.repo.Scope(transport.PushScope)})
	if err != nil {
		return err
	}
	wait := DefaultBackoff.Duration
	if t.d.Backoff != nil {
		wait = t.d.Backoff.Duration
	}
	c := &chunkClient{ctx: ctx, http: &http.Client{Transport: rt}, logf: t.d.Logf, wait: wait,
		base: t.repo.Registry.Scheme() + "://" + t.repo.RegistryStr() + "/v2/" + t.repo.RepositoryStr() + "/blobs/"}
	for _, l := range big {
		chunk := t.d.ChunkSize
		if chunk <= 0 {
			chunk = l.Size
		}
		if err := c.upload(l, chunk); err != nil {
			return err
		}
	}
	return nil
}

type chunkClient struct {
	ctx  context.Context
	http *http.Client
	base string        // .../v2/<name>/blobs/
	wait time.Duration // before the n-th retry of a chunk: n x wait
	logf func(string, ...any)
}

func (c *chunkClient) do(method, u string, body io.Reader, n int64, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(c.ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.http.Do(req)
}

// upload sends one layer in chunks unless the registry has it.
func (c *chunkClient) upload(l Layer, chunk int64) error {
	resp, err := c.do(http.MethodHead, c.base+l.Digest.String(), nil, 0, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = c.do(http.MethodPost, c.base+"uploads/", nil, 0, nil)
	if err != nil {
		return err
	}
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		resp.Body.Close()
		return err
	}
	resp.Body.Close()
	loc, err := location(resp)
	if err != nil {
		return err
	}
	var off int64
	lostWhole := 0 // whole-layer sends the registry kept nothing of
	for off < l.Size {
		end := min(off+chunk, l.Size)
		var next string
		var perr error
		for attempt := 1; ; attempt++ {
			next, perr = c.patch(l.Path, loc, off, end, l.Size)
			if perr == nil {
				break
			}
			if attempt >= chunkAttempts {
				return fmt.Errorf("blob %s: bytes %d-%d after %d attempts: %w", l.Digest, off, end-1, attempt, unwrapURL(perr))
			}
			if err := sleep(c.ctx, time.Duration(attempt)*c.wait); err != nil {
				return err
			}
			// Resume from what the registry holds.
			got, l2, err := c.status(loc)
			if err != nil {
				continue
			}
			if got == 0 && end == l.Size {
				if lostWhole++; lostWhole > 1 {
					return fmt.Errorf("blob %s: the registry kept nothing of %d bytes sent whole, twice: %w (set a chunk size to send it in resumable chunks)", l.Digest, l.Size, unwrapURL(perr))
				}
			}
			if c.logf != nil {
				c.logf("blob %s: a request failed (%v); resuming at byte %d of %d", l.Digest, unwrapURL(perr), got, l.Size)
			}
			loc, off = l2, got
			end = min(off+chunk, l.Size)
		}
		loc, off = next, end
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, err = c.do(http.MethodPut, loc+sep+"digest="+url.QueryEscape(l.Digest.String()), nil, 0, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusCreated)
}

// unwrapURL drops the request URL from a transport error: an upload's
// location carries its state token.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// patch sends bytes [off, end) of the file and returns the upload's next
// location. The file is opened for each request (net/http closes a body);
// a request that runs to the end of the file has the file itself as its
// body, which net/http sends with sendfile over plain HTTP.
func (c *chunkClient) patch(path, loc string, off, end, size int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return "", err
	}
	var body io.ReadCloser = f
	if end < size {
		body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(f, end-off), f}
	}
	resp, err := c.do(http.MethodPatch, loc, body, end-off, map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", off, end-1),
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted, http.StatusNoContent); err != nil {
		return "", err
	}
	return location(resp)
}

// status asks the registry how much of the upload it holds.
func (c *chunkClient) status(loc string) (int64, string, error) {
	resp, err := c.do(http.MethodGet, loc, nil, 0, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusNoContent); err != nil {
		return 0, "", err
	}
	next, err := location(resp)
	if err != nil {
		return 0, "", err
	}
	// Range: 0-<last byte received>. Distribution answers "0-0" for an
	// empty upload as for one byte; chunks are larger than a byte, so
	// "0-0" is taken as empty.
	r := resp.Header.Get("Range")
	_, last, ok := strings.Cut(r, "-")
	n, err := strconv.ParseInt(last, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, "", fmt.Errorf("upload status: Range %q", r)
	}
	if n == 0 {
		return 0, next, nil
	}
	return n + 1, next, nil
}

// location resolves a response's Location against its request.
func location(resp *http.Response) (string, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return "", fmt.Errorf("%s %s: no Location in the answer", resp.Request.Method, resp.Request.URL)
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
