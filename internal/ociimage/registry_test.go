package ociimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

var fastBackoff = remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 6}

func mustPlan(t testing.TB, es []Entry, o Options) *Plan {
	t.Helper()
	p, err := NewPlan(es, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func mustPublish(t testing.TB, p *Plan, d Destination) *Result {
	t.Helper()
	res, err := Publish(context.Background(), p, d)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// uniqueBlobs returns the number and total size of the distinct blobs of
// a plan (layers and configs).
func uniqueBlobs(p *Plan) (int, int64) {
	seen := map[v1.Hash]int64{}
	for _, m := range p.Manifests {
		for _, l := range m.Layers {
			seen[l.Digest] = l.Size
		}
		seen[digestOf(m.Config)] = int64(len(m.Config))
	}
	var n int64
	for _, s := range seen {
		n += s
	}
	return len(seen), n
}

func manifestOf(p *Plan, arch, bootMode string) *Manifest {
	for _, m := range p.Manifests {
		if m.Arch == arch && m.BootMode == bootMode {
			return m
		}
	}
	return nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "DOCKER_CONFIG="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// checkImage reads a manifest back with go-containerregistry and checks
// that every layer's bytes are the source file's.
func checkImage(t testing.TB, ref string, m *Manifest, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	raw, _ := img.RawManifest()
	if !bytes.Equal(raw, m.Raw) {
		t.Fatalf("%s: manifest differs from the planned one", ref)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sha(b), sha256Of(t, m.Layers[i].Source); got != want || m.Layers[i].Digest.String() != want {
			t.Fatalf("%s layer %s: registry bytes %s, digest %s, file %s", ref, m.Layers[i].Role, got, m.Layers[i].Digest, want)
		}
	}
}

func TestPublishedIndexesAreReadByIroncoreImageCraneAndSkopeo(t *testing.T) {
	t.Parallel()
	ironcore := ociTool(t, "ironcore-image")
	resolve := ociTool(t, "ironcore-resolve")
	crane := ociTool(t, "crane")
	skopeo := testutil.NeedTool(t, "skopeo", "skopeo")
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 4<<20)
	o := testOptions()
	o.CombinedTag = "{{ .Version }}"
	p := mustPlan(t, fx.entries, o)
	repo := reg.Host + "/os/debian"
	var progressed, progressTotal atomic.Int64
	d := Destination{Repository: repo, LockDir: t.TempDir(), Backoff: &fastBackoff, Settle: time.Millisecond,
		Progress: func(done, total int64) {
			if done > total || done < progressed.Load() {
				t.Errorf("progress %d of %d after %d", done, total, progressed.Load())
			}
			progressed.Store(done)
			progressTotal.Store(total)
		}}
	res := mustPublish(t, p, d)

	n, size := uniqueBlobs(p)
	if res.BlobsSent != n || res.BytesSent != size {
		t.Fatalf("sent %d blobs, %d bytes; want each of the %d distinct blobs (%d bytes) once", res.BlobsSent, res.BytesSent, n, size)
	}
	if progressed.Load() != size || progressTotal.Load() != size {
		t.Errorf("progress ended at %d of %d, want %d of %d", progressed.Load(), progressTotal.Load(), size, size)
	}
	if !strings.Contains(res.Credentials, "no credentials") {
		t.Errorf("credentials %q", res.Credentials)
	}
	tags := map[string]IndexResult{}
	for _, ir := range res.Indexes {
		tags[ir.Tag] = ir
		if ir.Ref != repo+":"+ir.Tag || !ir.Changed {
			t.Errorf("index result %+v", ir)
		}
	}
	if len(tags) != 3 || tags["13.1"].Entries != 4 || tags["13.1-kvm"].Entries != 2 || tags["13.1-metal"].Entries != 2 {
		t.Fatalf("indexes %+v", res.Indexes)
	}
	if len(res.ArchTags) != 4 || len(res.Manifests) != 4 {
		t.Fatalf("arch tags %v, manifests %v", res.ArchTags, res.Manifests)
	}

	for _, bm := range []string{Virtualization, Baremetal} {
		tag := repo + ":13.1-" + IroncoreVariant(bm)
		// skopeo: the raw index is the one we wrote.
		raw := run(t, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+tag)
		if sha(raw) != tags["13.1-"+IroncoreVariant(bm)].Digest {
			t.Fatalf("skopeo reads %s as %s, we wrote %s", tag, sha(raw), tags["13.1-"+IroncoreVariant(bm)].Digest)
		}
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatal(err)
		}
		if len(idx.Manifests) != 2 || idx.Manifests[0].Platform.Architecture != "amd64" || idx.Manifests[1].Platform.Architecture != "arm64" {
			t.Fatalf("%s entries %+v", tag, idx.Manifests)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			m := manifestOf(p, arch, bm)
			checkImage(t, tag, m, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
			checkImage(t, tag+"-"+arch, m)
			// crane picks the entry by platform.
			got := run(t, crane, "manifest", "--insecure", "--platform", "linux/"+arch, tag)
			if !bytes.Equal(got, m.Raw) {
				t.Fatalf("crane manifest --platform linux/%s %s:\n%s", arch, tag, got)
			}
			// skopeo reads the per-arch tag.
			if got := run(t, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+tag+"-"+arch); !bytes.Equal(got, m.Raw) {
				t.Fatalf("skopeo %s-%s differs", tag, arch)
			}
			// ironcore-image's own library resolves the boot-mode index for
			// the platform and accepts every layer type.
			var rr map[string]json.RawMessage
			if err := json.Unmarshal(run(t, resolve, "--platform", "linux/"+arch, tag), &rr); err != nil {
				t.Fatal(err)
			}
			if string(rr["manifest"]) != `"`+m.Digest.String()+`"` {
				t.Fatalf("ironcore-image resolved %s for linux/%s to %s, want %s", tag, arch, rr["manifest"], m.Digest)
			}
			var cfg configFile
			json.Unmarshal(m.Config, &cfg)
			if string(rr["commandLine"]) != `"`+cfg.CommandLine+`"` {
				t.Fatalf("command line %s, want %q", rr["commandLine"], cfg.CommandLine)
			}
			for _, l := range m.Layers {
				var lo layerOut
				if err := json.Unmarshal(rr[l.Role], &lo); err != nil {
					t.Fatalf("ironcore-image found no %s layer: %s", l.Role, rr)
				}
				if want := sha256Of(t, l.Source); lo.SHA256 != want || lo.Digest != want {
					t.Fatalf("ironcore-image %s: digest %s, bytes %s; file %s", l.Role, lo.Digest, lo.SHA256, want)
				}
			}
			// The CLI pulls the per-arch tag.
			out := string(run(t, ironcore, "--store-path", t.TempDir(), "pull", tag+"-"+arch))
			if !strings.Contains(out, "Successfully pulled") || !strings.Contains(out, m.Digest.Hex) {
				t.Fatalf("ironcore-image pull %s-%s: %s", tag, arch, out)
			}
		}
	}
	// The combined index: first-match clients asking for linux/arm64 get the
	// baremetal entry (documented order: what boot-operator can PXE-boot).
	if got := run(t, crane, "manifest", "--insecure", "--platform", "linux/arm64", repo+":13.1"); !bytes.Equal(got, manifestOf(p, "arm64", Baremetal).Raw) {
		t.Fatalf("combined index, linux/arm64: %s", got)
	}

	// A second publish of the same inputs sends no blob and changes nothing.
	p2 := mustPlan(t, fx.entries, o)
	res2 := mustPublish(t, p2, d)
	if res2.BlobsSent != 0 || res2.BytesSent != 0 {
		t.Fatalf("second publish sent %d blobs, %d bytes", res2.BlobsSent, res2.BytesSent)
	}
	for i, ir := range res2.Indexes {
		if ir.Changed || ir.Digest != res.Indexes[i].Digest {
			t.Fatalf("second publish changed %s: %+v vs %+v", ir.Tag, ir, res.Indexes[i])
		}
	}
	for i, mr := range res2.Manifests {
		if mr != res.Manifests[i] {
			t.Fatalf("manifest %+v, first run %+v", mr, res.Manifests[i])
		}
	}
}

type layerOut struct {
	Digest string `json:"digest"`
	SHA256 string `json:"sha256"`
}

func TestPlatformVariantSelectsTheBootModeInTheCombinedIndex(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 64<<10)
	o := testOptions()
	o.CombinedTag = "all-{{ .Version }}"
	o.PlatformVariant = true
	p := mustPlan(t, fx.entries, o)
	repo := reg.Host + "/os/x"
	mustPublish(t, p, Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond})
	r, _ := name.ParseReference(repo + ":all-13.1")
	img, err := remote.Image(r, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64", Variant: Baremetal}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != manifestOf(p, "arm64", Baremetal).Digest {
		t.Fatalf("linux/arm64/baremetal picked %s", d)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		if d.Platform.Variant != d.Annotations[AnnotationBootMode] {
			t.Fatalf("entry %+v", d)
		}
	}
	// Per boot mode indexes keep plain platforms.
	r2, _ := name.ParseReference(repo + ":13.1-metal")
	idx2, _ := remote.Index(r2)
	im2, err := idx2.IndexManifest()
	if err != nil || im2.Manifests[0].Platform.Variant != "" {
		t.Fatalf("per-boot-mode index: %v %+v", err, im2)
	}
}

// faultProxy forwards to a registry; with faults it breaks blob uploads:
// the first is cut after 64 KiB, the second gets a 503, and after them every
// fifth is cut.
type faultProxy struct {
	rp         *httputil.ReverseProxy
	faults     bool
	uploads    atomic.Int64
	drops      atomic.Int64
	errors5xx  atomic.Int64
	user, pass string
}

func startProxy(t testing.TB, registryHost string) (*faultProxy, string) {
	u, _ := url.Parse("http://" + registryHost)
	f := &faultProxy{rp: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
	}
	if f.faults && isBlobUpload(r) && r.ContentLength != 0 {
		switch n := f.uploads.Add(1); {
		case n == 1 || n%5 == 0:
			f.drops.Add(1)
			io.CopyN(io.Discard, r.Body, 64<<10)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case n == 2:
			f.errors5xx.Add(1)
			io.Copy(io.Discard, r.Body)
			http.Error(w, "injected", http.StatusServiceUnavailable)
			return
		}
	}
	f.rp.ServeHTTP(w, r)
}

func TestPushSurvivesServerErrorsAndDroppedConnectionsMidUpload(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	proxy, host := startProxy(t, reg.Host)
	proxy.faults = true
	fx := makeEntries(t, 2<<20)
	p := mustPlan(t, fx.entries, testOptions())
	var logs []string
	var mu sync.Mutex
	res := mustPublish(t, p, Destination{Repository: host + "/os/faulty", LockDir: t.TempDir(), Backoff: &fastBackoff, Settle: time.Millisecond,
		Logf: func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }})
	if proxy.drops.Load() == 0 || proxy.errors5xx.Load() == 0 {
		t.Fatalf("no faults injected (%d drops, %d 5xx)", proxy.drops.Load(), proxy.errors5xx.Load())
	}
	n, _ := uniqueBlobs(p)
	if res.BlobsSent <= n {
		t.Fatalf("%d blob uploads for %d blobs: the failed ones were not retried", res.BlobsSent, n)
	}
	// Read back from the registry directly, not through the proxy.
	for _, m := range p.Manifests {
		checkImage(t, reg.Host+"/os/faulty@"+m.Digest.String(), m)
		checkImage(t, reg.Host+"/os/faulty:13.1-"+IroncoreVariant(m.BootMode), m, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: m.Arch}))
	}
}

func TestUnauthorizedNamesTheCredentialSourceButNeverTheSecret(t *testing.T) {
	reg := testsvc.StartRegistry(t)
	proxy, host := startProxy(t, reg.Host)
	proxy.user, proxy.pass = "builder", "right-secret"
	fx := makeEntries(t, 8<<10)
	p := mustPlan(t, fx.entries[:1], testOptions())
	d := Destination{Repository: host + "/os/auth", LockDir: t.TempDir(), Backoff: &fastBackoff, Settle: time.Millisecond,
		Username: "builder", Password: "wrong-secret-31337"}
	_, err := Publish(context.Background(), p, d)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), `username "builder" and password from the configuration`) ||
		!strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), host+"/os/auth") || strings.Contains(err.Error(), "wrong-secret-31337") {
		t.Fatalf("error %v", err)
	}

	// From a Docker config file: the message says so; the right password works.
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	writeDockerConfig(t, cfgDir, host, "builder", "also-wrong-4242")
	d.Username, d.Password = "", ""
	_, err = Publish(context.Background(), p, d)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "the credentials for "+host+" from the Docker/Podman config files") || strings.Contains(err.Error(), "also-wrong-4242") {
		t.Fatalf("error %v", err)
	}
	writeDockerConfig(t, cfgDir, host, "builder", "right-secret")
	res := mustPublish(t, p, d)
	if res.BlobsSent != 2 {
		t.Fatalf("sent %d blobs", res.BlobsSent)
	}
	// Without any credentials: the message says there were none.
	os.Remove(filepath.Join(cfgDir, "config.json"))
	if _, err = Publish(context.Background(), p, d); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("error %v", err)
	}
}

func writeDockerConfig(t testing.TB, dir, host, user, pass string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"username": user, "password": pass}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAnUnreachableRegistryIsReportedAsSuch(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	fx := makeEntries(t, 8<<10)
	p := mustPlan(t, fx.entries[:1], testOptions())
	_, err = Publish(context.Background(), p, Destination{Repository: host + "/os/x", LockDir: t.TempDir(), Backoff: &remote.Backoff{Duration: time.Millisecond, Steps: 1}})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), host+"/os/x") {
		t.Fatalf("error %v", err)
	}
}

func TestATagHoldingAnImageIsReplacedOnlyWithForce(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 8<<10)
	p := mustPlan(t, fx.entries[:1], testOptions())
	repo := reg.Host + "/os/x"
	// Someone tagged a plain image as 13.1-kvm.
	img, _ := p.Manifests[0].image()
	tag, _ := name.NewTag(repo + ":13.1-kvm")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d := Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond}
	_, err := Publish(context.Background(), p, d)
	if !errors.Is(err, ErrNotAnIndex) || !strings.Contains(err.Error(), repo+":13.1-kvm holds a application/vnd.oci.image.manifest.v1+json") {
		t.Fatalf("error %v", err)
	}
	got, _ := remote.Get(tag)
	if got.Digest != p.Manifests[0].Digest {
		t.Fatal("the refused publish changed the tag")
	}
	// It was refused before anything was written: no per-arch tag.
	archTag, _ := name.NewTag(repo + ":13.1-kvm-amd64")
	if _, err := remote.Head(archTag); err == nil {
		t.Fatal("the refused publish pushed the per-arch tag")
	}
	p.Force = true
	res := mustPublish(t, p, d)
	got, _ = remote.Get(tag)
	if !got.MediaType.IsIndex() || got.Digest.String() != res.Indexes[0].Digest {
		t.Fatalf("forced publish left %s at the tag", got.MediaType)
	}
}

func TestPlainHTTPGoesOnlyToLoopbackOrInsecureRegistries(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1:5000": true, "localhost:1": true, "[::1]:5000": true, "localhost": true,
		"10.0.0.1:5000": false, "registry.example.com": false, "192.168.1.1": false, "127.example.com": false} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
	ct := &countingTransport{base: http.DefaultTransport}
	req, _ := http.NewRequest(http.MethodGet, "http://10.1.2.3:5000/v2/", nil)
	if _, err := ct.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP to 10.1.2.3:5000") {
		t.Fatalf("plain HTTP to a private address: %v", err)
	}
	// https and allowed plain HTTP go through to the base transport.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ct = &countingTransport{base: http.DefaultTransport, allowHTTP: true}
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	if resp, err := ct.RoundTrip(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	// A repository without a registry host is refused before any request.
	if _, err := newRegistryTarget(context.Background(), Destination{Repository: "os/debian"}); err == nil || !strings.Contains(err.Error(), "want host[:port]/path") {
		t.Fatalf("repository without host: %v", err)
	}
	for _, r := range []string{"localhost/x", "reg.io/a/b", "http://127.0.0.1:1/x"} {
		if _, err := newRegistryTarget(context.Background(), Destination{Repository: r, Keychain: authn.NewMultiKeychain()}); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
	if _, err := newRegistryTarget(context.Background(), Destination{Repository: "reg.io/UPPER"}); err == nil {
		t.Error("an invalid repository name was accepted")
	}
}
