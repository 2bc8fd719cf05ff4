package ociimage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultBackoff is the retry schedule for registry requests: 5 tries,
// waiting 1s, 2s, 4s, 8s (plus 10 % jitter) between them.
var DefaultBackoff = remote.Backoff{Duration: 1e9, Factor: 2, Jitter: 0.1, Steps: 5}

type registryTarget struct {
	repo    name.Repository
	auth    authn.Authenticator
	opts    []remote.Option
	creds   string
	counter *countingTransport
	d       Destination
}

// IsLoopback reports whether a registry host (host[:port]) is on loopback.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func newRegistryTarget(ctx context.Context, d Destination) (*registryTarget, error) {
	repoStr := strings.TrimPrefix(strings.TrimPrefix(d.Repository, "https://"), "http://")
	host := strings.SplitN(repoStr, "/", 2)[0]
	var nopts []name.Option
	plain := d.Insecure || IsLoopback(host)
	if plain {
		nopts = append(nopts, name.Insecure)
	}
	if !strings.Contains(repoStr, "/") || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return nil, fmt.Errorf("repository %q: want host[:port]/path, e.g. ghcr.io/org/os", d.Repository)
	}
	repo, err := name.NewRepository(repoStr, append(nopts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", d.Repository, err)
	}
	t := &registryTarget{repo: repo, d: d}
	var auth authn.Authenticator
	if d.Username != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: d.Username, Password: d.Password})
		t.creds = fmt.Sprintf("username %q and password from the configuration", d.Username)
	} else {
		kc := d.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		auth, err = kc.Resolve(repo)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s from the Docker/Podman config files: %w", repo.RegistryStr(), err)
		}
		if auth == authn.Anonymous {
			t.creds = fmt.Sprintf("no credentials (none for %s in the Docker/Podman config files: $DOCKER_CONFIG/config.json, ~/.docker/config.json, $REGISTRY_AUTH_FILE, containers/auth.json)", repo.RegistryStr())
		} else {
			t.creds = fmt.Sprintf("the credentials for %s from the Docker/Podman config files ($DOCKER_CONFIG/config.json, ~/.docker/config.json, $REGISTRY_AUTH_FILE, containers/auth.json)", repo.RegistryStr())
		}
	}
	t.auth = auth
	base := d.Transport
	if base == nil {
		base = remote.DefaultTransport.(*http.Transport).Clone()
	}
	t.counter = &countingTransport{base: base, allowHTTP: plain, host: repo.RegistryStr(), logf: d.Logf}
	backoff := DefaultBackoff
	if d.Backoff != nil {
		backoff = *d.Backoff
	}
	jobs := d.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	t.opts = []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(t.counter),
		remote.WithRetryBackoff(backoff),
		remote.WithJobs(jobs),
		remote.WithUserAgent("packer-plugin-osimage"),
	}
	return t, nil
}

func (t *registryTarget) describe() string { return t.repo.Name() }

// layerLimits are the documented per-layer limits of registries: GHCR
// refuses layers over 10 GB ("About the Container registry", GitHub docs).
var layerLimits = map[string]int64{"ghcr.io": 10_000_000_000}

func (t *registryTarget) layerLimit() (int64, string) {
	h := t.repo.RegistryStr()
	return layerLimits[h], h
}

func (t *registryTarget) lockKey() string { return "registry:" + t.repo.Name() }
func (t *registryTarget) ref(s string) string {
	return t.repo.Name() + s
}

func (t *registryTarget) stats() (int, int64, string) {
	return int(t.counter.blobs.Load()), t.counter.bytes.Load(), t.creds
}

// classify turns transport errors into the package's errors, naming the
// registry and the credential source (never the secret).
func (t *registryTarget) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if isImmutableRefusal(te) {
			return fmt.Errorf("%s %s: HTTP %d: %w: %v (a re-run of identical content writes no tag; for repositories with immutable tags publish each build's arch tags with index_mode = \"none\" and write the indexes once, at the end, with index_mode = \"only\")", op, t.repo.Name(), te.StatusCode, ErrImmutableTag, err)
		}
		if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
			return fmt.Errorf("%s %s: HTTP %d with %s: %w: %v", op, t.repo.Name(), te.StatusCode, t.creds, ErrUnauthorized, err)
		}
		return fmt.Errorf("%s %s: HTTP %d: %w", op, t.repo.Name(), te.StatusCode, err)
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return fmt.Errorf("%s %s: %w: %v", op, t.repo.Name(), ErrUnreachable, err)
	}
	return fmt.Errorf("%s %s: %w", op, t.repo.Name(), err)
}

// isImmutableRefusal tells a registry's refusal to overwrite a tag: ECR
// answers 400 TAG_INVALID "… cannot be overwritten because the repository
// is immutable" (aws/containers-roadmap#862), Harbor 412 (goharbor/harbor
// PR #9427), others 409 or 403 naming immutability.
func isImmutableRefusal(te *transport.Error) bool {
	if te.StatusCode == http.StatusPreconditionFailed {
		return true
	}
	for _, d := range te.Errors {
		if strings.Contains(strings.ToLower(d.Message), "immutable") || d.Code == "TAG_IMMUTABLE" {
			return true
		}
	}
	return false
}

func (t *registryTarget) writeManifests(ctx context.Context, p *Plan, skip map[string]bool) error {
	todo := map[name.Reference]remote.Taggable{}
	for _, m := range p.Manifests {
		img, err := m.image()
		if err != nil {
			return err
		}
		todo[t.repo.Digest(m.Digest.String())] = img
	}
	for _, at := range p.ArchTags {
		if skip[at.Tag] {
			continue
		}
		img, err := p.Manifests[at.Manifest].image()
		if err != nil {
			return err
		}
		todo[t.repo.Tag(at.Tag)] = img
	}
	// Progress comes from the transport (file offsets of uploads under way),
	// not remote.WithProgress: its counting reader would hide the file from
	// net/http, which then, over plain HTTP, copies through user space
	// instead of sendfile (over TLS the bytes are copied to be encrypted
	// either way).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if t.d.Progress != nil {
		_, total := p.blobBytes()
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(cmp.Or(t.d.progressTick, 250*time.Millisecond))
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					t.d.Progress(min(t.counter.progress(), total), total)
				}
			}
		}()
	}
	err := t.uploadChunked(ctx, p)
	if err == nil {
		err = remote.MultiWrite(todo, t.opts...)
	}
	close(stop)
	wg.Wait()
	if err == nil && t.d.Progress != nil {
		_, total := p.blobBytes()
		t.d.Progress(total, total)
	}
	return t.classify("push to", err)
}

func (t *registryTarget) tagArch(context.Context, *Plan, map[string]bool) error { return nil }

func (t *registryTarget) head(ctx context.Context, tag string) (string, error) {
	desc, err := remote.Head(t.repo.Tag(tag), t.opts...)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return "", nil
		}
		return "", t.classify("read "+tag+" from", err)
	}
	return desc.Digest.String(), nil
}

func (t *registryTarget) get(ctx context.Context, tag string) (Existing, error) {
	desc, err := remote.Get(t.repo.Tag(tag), t.opts...)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return Existing{}, nil
		}
		return Existing{}, t.classify("read "+tag+" from", err)
	}
	return Existing{Found: true, MediaType: string(desc.MediaType), Raw: desc.Manifest}, nil
}

func (t *registryTarget) hasManifest(ctx context.Context, h v1.Hash) (bool, error) {
	_, err := remote.Head(t.repo.Digest(h.String()), t.opts...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return false, nil
	}
	return err == nil, t.classify("read "+h.String()+" from", err)
}

func (t *registryTarget) putIndex(ctx context.Context, tag string, raw []byte) error {
	err := remote.Put(t.repo.Tag(tag), rawManifest{raw: raw, mt: types.OCIImageIndex}, t.opts...)
	return t.classify("write index "+tag+" to", err)
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// image is the manifest as a go-containerregistry image whose layers are
// the files.
func (m *Manifest) image() (v1.Image, error) {
	return partial.CompressedToImage(imageCore{m})
}

type imageCore struct{ m *Manifest }

func (c imageCore) RawConfigFile() ([]byte, error)      { return c.m.Config, nil }
func (c imageCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (c imageCore) RawManifest() ([]byte, error)        { return c.m.Raw, nil }
func (c imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range c.m.Layers {
		if l.Digest == h {
			return fileLayer{l}, nil
		}
	}
	if h == digestOf(c.m.Config) {
		return configLayer{c.m.Config}, nil
	}
	return nil, fmt.Errorf("manifest %s has no blob %s", c.m.Digest, h)
}

type configLayer struct{ b []byte }

func (c configLayer) Digest() (v1.Hash, error) { return digestOf(c.b), nil }
func (c configLayer) Size() (int64, error)     { return int64(len(c.b)), nil }
func (c configLayer) MediaType() (types.MediaType, error) {
	return MediaTypeConfig, nil
}
func (c configLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(c.b))), nil
}

// countingTransport refuses plain HTTP unless allowed, counts blob uploads
// and their bytes, tracks the progress of uploads under way, and waits out
// a 429's Retry-After. A file body goes to net/http untouched (so plain
// HTTP sends it with sendfile); its progress is its file offset.
type countingTransport struct {
	base      http.RoundTripper
	allowHTTP bool
	host      string
	logf      func(format string, args ...any)
	blobs     atomic.Int64
	bytes     atomic.Int64
	done      atomic.Int64 // bytes of finished uploads and of blobs the registry had

	mu       sync.Mutex
	inflight map[*os.File]inflightUpload
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !c.allowHTTP {
		return nil, fmt.Errorf("refusing plain HTTP to %s (only loopback registries, or insecure = true): %w", req.URL.Host, ErrUnreachable)
	}
	resp, err := c.roundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		// go-containerregistry retries a 429 on its own schedule and
		// ignores Retry-After (Docker Hub and GHCR send it with their
		// rate limits): wait that long first, so its retry comes after.
		if wait := retryAfter(resp.Header.Get("Retry-After"), time.Now()); wait > 0 {
			if c.logf != nil {
				c.logf("%s: rate limited (429); waiting %s as Retry-After asks", c.host, wait)
			}
			if err := sleep(req.Context(), wait); err != nil {
				resp.Body.Close()
				return nil, err
			}
		}
	}
	return resp, err
}

// maxRetryAfter bounds one wait for a registry's Retry-After.
const maxRetryAfter = 5 * time.Minute

// retryAfter reads a Retry-After header (seconds, or an HTTP date),
// at most maxRetryAfter; 0 when absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(h); err == nil {
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(h); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

func (c *countingTransport) roundTrip(req *http.Request) (*http.Response, error) {
	if !isBlobUpload(req) {
		resp, err := c.base.RoundTrip(req)
		if err == nil && req.Method == http.MethodHead && resp.StatusCode == http.StatusOK && strings.Contains(req.URL.Path, "/blobs/") && resp.ContentLength > 0 {
			c.done.Add(resp.ContentLength)
		}
		return resp, err
	}
	if f, ok := req.Body.(*os.File); ok {
		start, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			start = 0
		}
		c.mu.Lock()
		if c.inflight == nil {
			c.inflight = map[*os.File]inflightUpload{}
		}
		c.inflight[f] = inflightUpload{start: start, length: max(req.ContentLength, 0)}
		c.mu.Unlock()
		resp, err := c.base.RoundTrip(req)
		c.mu.Lock()
		delete(c.inflight, f)
		c.mu.Unlock()
		c.blobs.Add(1)
		if err == nil && req.ContentLength > 0 {
			// A response means the whole body went out (net/http sends it
			// before it reads the response).
			c.bytes.Add(req.ContentLength)
			if resp.StatusCode < 300 {
				c.done.Add(req.ContentLength)
			}
		}
		return resp, err
	}
	cr := &countingReader{rc: req.Body, n: &c.bytes}
	req = req.Clone(req.Context())
	req.Body = cr
	resp, err := c.base.RoundTrip(req)
	if cr.read.Load() > 0 {
		c.blobs.Add(1)
		if err == nil && resp.StatusCode < 300 {
			c.done.Add(cr.read.Load())
		}
	}
	return resp, err
}

// isBlobUpload tells a request that carries blob bytes (a PATCH or PUT with
// a body to an upload session) from the rest of the registry protocol.
func isBlobUpload(req *http.Request) bool {
	return req.Body != nil && (req.Method == http.MethodPatch || req.Method == http.MethodPut) && strings.Contains(req.URL.Path, "/blobs/uploads/")
}

// progress is the bytes done: finished and existing blobs plus what the
// uploads under way have read of their files.
func (c *countingTransport) progress() int64 {
	n := c.done.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	for f, u := range c.inflight {
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			// net/http closes the body once it has sent it; the response
			// (the registry checking the digest) is still to come.
			n += u.length
		} else if off > u.start {
			n += off - u.start
		}
	}
	return n
}

// inflightUpload is an upload body's file offset when its request started
// and the request's length.
type inflightUpload struct{ start, length int64 }

type countingReader struct {
	rc   io.ReadCloser
	n    *atomic.Int64
	read atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.rc.Read(b)
	c.n.Add(int64(n))
	c.read.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }
