package testsvc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RegistryBehaviour is what a RegistryProxy does that the distribution
// registry does not, but real registries do. The zero value forwards every
// request unchanged.
type RegistryBehaviour struct {
	// StaleFor: after a manifest is written to a tag, reads of that tag
	// (GET and HEAD) serve the tag's previous version (404 when it had
	// none) for this long. GHCR, ACR and ECR are eventually consistent:
	// GHCR serves an old tag for seconds after a push (osimage issue 21;
	// github/roadmap discussions on GHCR caching), ECR documents eventual
	// consistency of its API. While a tag stays within its window, later
	// writes keep the oldest version visible: the worst replica.
	StaleFor time.Duration
	// NewRepoStatus, when 401 or 403, is the answer to a manifest or tag
	// read in a repository that does not exist yet (no tag, no upload
	// started through the proxy), even with valid credentials: a token
	// with push scope, which an upload asks for, may read it. Docker Hub answers 401 UNAUTHORIZED ("authentication
	// required", insufficient_scope: a pull token is only granted for an
	// existing repository, docker/hub-feedback#1914), GHCR 403 DENIED
	// ("requested access to the resource is denied").
	NewRepoStatus int
	// Immutable refuses a manifest write to a tag that already exists, as
	// ECR answers for a repository with imageTagMutability IMMUTABLE:
	// 400 TAG_INVALID "The image tag '…' already exists in the '…'
	// repository and cannot be overwritten because the repository is
	// immutable." (aws/containers-roadmap#862, kaniko PR #204). Harbor's
	// immutability rules answer 412 (goharbor/harbor PR #9427); ECR
	// refuses the identical manifest too (aws/containers-roadmap#2380).
	Immutable bool
	// ContentTypeParams is appended to the Content-Type of manifest
	// responses, e.g. "; charset=utf-8" as some registries and proxies send
	// (opencontainers/distribution-spec#469: clients must ignore media type
	// parameters).
	ContentTypeParams string
	// Throttle, when Requests > 0, answers that many repository requests
	// (under /v2/<name>/; the /v2/ ping is not limited) with 429 Too
	// Many Requests and Retry-After (whole seconds), as Docker Hub's pull
	// rate limit (docs.docker.com/docker-hub/usage/: 429 with the limit's
	// reset) and GHCR do; a request arriving before the announced time is
	// answered 429 again and counted as early.
	Throttle Throttle
	// Username and Password, when set, turn on token authentication as
	// Docker Hub and GHCR do it (distribution's token spec): requests
	// without a token get 401 with a Bearer challenge; the realm (/token)
	// gives a token for the scopes asked, with these credentials as Basic.
	// A token's scopes decide whether NewRepoStatus applies: pull only
	// (remote.Get) is refused in a new repository, push (remote.Write)
	// may read it.
	Username, Password string
}

// Throttle is a run of 429 answers.
type Throttle struct {
	Requests   int
	RetryAfter time.Duration // rounded up to whole seconds
}

// RegistryProxy is an HTTP proxy in front of a registry that behaves as
// RegistryBehaviour says, and counts the requests it sees.
type RegistryProxy struct {
	// Host is the proxy's host:port.
	Host    string
	backend string
	rp      *httputil.ReverseProxy

	mu        sync.Mutex
	b         RegistryBehaviour
	stale     map[string]*staleTag // "name:tag"
	counts    map[string]int
	throttled int
	early     int
	notBefore time.Time
	refused   int
	created   map[string]bool
}

type staleTag struct {
	found bool
	ct    string
	body  []byte
	until time.Time
}

// StartRegistryProxy starts a proxy on a loopback port in front of the
// registry at backendHost (host:port, plain HTTP), stopped when the test
// ends.
func StartRegistryProxy(t testing.TB, backendHost string, b RegistryBehaviour) *RegistryProxy {
	t.Helper()
	u, err := url.Parse("http://" + backendHost)
	if err != nil {
		t.Fatal(err)
	}
	p := &RegistryProxy{backend: backendHost, rp: httputil.NewSingleHostReverseProxy(u), b: b,
		stale: map[string]*staleTag{}, counts: map[string]int{}, created: map[string]bool{}}
	p.rp.ModifyResponse = p.modifyResponse
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Set replaces the behaviour; without StaleFor every tag is served fresh
// again (the registry caught up).
func (p *RegistryProxy) Set(b RegistryBehaviour) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b = b
	p.throttled = 0
}

// Count returns how many requests of a kind the proxy saw, e.g. "GET
// manifest", "HEAD manifest", "PUT manifest", "POST blob", "GET tags".
func (p *RegistryProxy) Count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[kind]
}

// ResetCounts sets every count to zero.
func (p *RegistryProxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
}

// Throttled returns the number of 429 answers and of requests that came
// before the Retry-After they were given.
func (p *RegistryProxy) Throttled() (answered, early int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttled, p.early
}

// Refused returns the number of tag overwrites refused (Immutable).
func (p *RegistryProxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

var apiPath = regexp.MustCompile(`^/v2/(.+)/(manifests|blobs|tags)/(.*)$`)

func kindOf(r *http.Request) (kind, name, ref string) {
	m := apiPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return r.Method + " other", "", ""
	}
	k := strings.TrimSuffix(m[2], "s")
	if m[2] == "tags" {
		k = "tags"
	}
	return r.Method + " " + k, m[1], m[3]
}

// tokenScopes reads a token the proxy's realm gave.
func tokenScopes(auth string) (string, bool) {
	tok, ok := strings.CutPrefix(auth, "Bearer tok:")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err == nil
}

func isDigest(ref string) bool { return strings.Contains(ref, ":") }

func registryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

func (p *RegistryProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, name, ref := kindOf(r)
	p.mu.Lock()
	p.counts[kind]++
	b := p.b
	now := time.Now()
	if name != "" && b.Throttle.Requests > 0 && (p.throttled < b.Throttle.Requests || now.Before(p.notBefore)) {
		if now.Before(p.notBefore) {
			p.early++
		}
		p.throttled++
		secs := int((b.Throttle.RetryAfter + time.Second - 1) / time.Second)
		p.notBefore = now.Add(time.Duration(secs) * time.Second)
		p.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		registryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "rate limit exceeded")
		return
	}
	p.mu.Unlock()
	canPush := true
	if b.Username != "" {
		if r.URL.Path == "/token" {
			if u, pw, ok := r.BasicAuth(); !ok || u != b.Username || pw != b.Password {
				registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
				return
			}
			tok := "tok:" + base64.RawURLEncoding.EncodeToString([]byte(strings.Join(r.URL.Query()["scope"], " ")))
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, tok, tok)
			return
		}
		scopes, ok := tokenScopes(r.Header.Get("Authorization"))
		if !ok {
			scope := ""
			if name != "" {
				scope = fmt.Sprintf(`,scope="repository:%s:pull"`, name)
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="testsvc"%s`, r.Host, scope))
			registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
		canPush = strings.Contains(scopes, "repository:"+name+":push") || strings.Contains(scopes, "repository:"+name+":pull,push")
	}
	if name == "" {
		p.rp.ServeHTTP(w, r)
		return
	}
	if kind == "POST blob" {
		p.mu.Lock()
		p.created[name] = true
		p.mu.Unlock()
	}
	reading := r.Method == http.MethodGet || r.Method == http.MethodHead
	if reading && !canPush && (kind == r.Method+" manifest" || kind == r.Method+" tags") && (b.NewRepoStatus == 401 || b.NewRepoStatus == 403) && !p.repoExists(name) {
		if b.NewRepoStatus == 401 {
			registryError(w, 401, "UNAUTHORIZED", "authentication required")
		} else {
			registryError(w, 403, "DENIED", "requested access to the resource is denied")
		}
		return
	}
	if kind == r.Method+" manifest" && !isDigest(ref) {
		key := name + ":" + ref
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			p.mu.Lock()
			st := p.stale[key]
			if st != nil && (now.After(st.until) || b.StaleFor == 0) {
				delete(p.stale, key)
				st = nil
			}
			p.mu.Unlock()
			if st != nil {
				p.serveStale(w, r, st, b.ContentTypeParams)
				return
			}
		case http.MethodPut:
			prev := p.fetch(name, ref)
			if b.Immutable && prev.found {
				p.mu.Lock()
				p.refused++
				p.mu.Unlock()
				io.Copy(io.Discard, r.Body)
				registryError(w, http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf("The image tag '%s' already exists in the '%s' repository and cannot be overwritten because the repository is immutable.", ref, name))
				return
			}
			if b.StaleFor > 0 {
				rec := &statusRecorder{ResponseWriter: w}
				p.rp.ServeHTTP(rec, r)
				if rec.status/100 == 2 {
					p.mu.Lock()
					if old := p.stale[key]; old != nil && time.Now().Before(old.until) {
						old.until = time.Now().Add(b.StaleFor)
					} else {
						prev.until = time.Now().Add(b.StaleFor)
						p.stale[key] = &prev
					}
					p.mu.Unlock()
				}
				return
			}
		}
	}
	p.rp.ServeHTTP(w, r)
}

func (p *RegistryProxy) modifyResponse(resp *http.Response) error {
	p.mu.Lock()
	params := p.b.ContentTypeParams
	p.mu.Unlock()
	if params != "" && strings.Contains(resp.Request.URL.Path, "/manifests/") && resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			resp.Header.Set("Content-Type", ct+params)
		}
	}
	return nil
}

func (p *RegistryProxy) serveStale(w http.ResponseWriter, r *http.Request, st *staleTag, params string) {
	if !st.found {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
		return
	}
	w.Header().Set("Content-Type", st.ct+params)
	w.Header().Set("Content-Length", strconv.Itoa(len(st.body)))
	w.Header().Set("Docker-Content-Digest", digestOf(st.body))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(st.body)
	}
}

// fetch reads what a tag holds at the backend.
func (p *RegistryProxy) fetch(name, tag string) staleTag {
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.backend+"/v2/"+name+"/manifests/"+tag, nil)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json"}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return staleTag{}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return staleTag{}
	}
	return staleTag{found: true, ct: resp.Header.Get("Content-Type"), body: body}
}

// repoExists asks the backend whether a repository holds anything.
func (p *RegistryProxy) repoExists(name string) bool {
	p.mu.Lock()
	created := p.created[name]
	p.mu.Unlock()
	if created {
		return true
	}
	resp, err := http.Get("http://" + p.backend + "/v2/" + name + "/tags/list")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}
