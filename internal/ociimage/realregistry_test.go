package ociimage

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// Tests against a registry that behaves as the real ones do where the
// distribution registry does not (internal/testsvc.RegistryProxy: stale
// tags, 401/403 for a new repository, immutable tags, Content-Type
// parameters, 429 with Retry-After). What the registry ends up holding is
// read from the distribution registry itself, behind the proxy.

// platformTag names indexes by the boot mode's platform name, as the tests
// of the seed did.
const platformTag = "{{ .Version }}-{{ .Platform }}"

func proxied(t *testing.T, b testsvc.RegistryBehaviour) (*testsvc.Registry, *testsvc.RegistryProxy) {
	t.Helper()
	reg := testsvc.StartRegistry(t)
	return reg, testsvc.StartRegistryProxy(t, reg.Host, b)
}

func entryKeys(t *testing.T, ref string) string {
	t.Helper()
	return strings.Join(keysOf(indexAt(t, ref)), " ")
}

const allFour = "baremetal/amd64 baremetal/arm64 virtualization/amd64 virtualization/arm64"

// sameKeys compares entry lists as sets: the order is another test's.
func sameKeys(got, want string) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != len(w) {
		return false
	}
	have := map[string]bool{}
	for _, k := range g {
		have[k] = true
	}
	for _, k := range w {
		if !have[k] {
			return false
		}
	}
	return true
}

// The registry serves every tag's previous version (here: nothing) for
// longer than the test runs. Four builds in four processes, one entry
// each, serialised by the machine's lock in whatever order the scheduler
// gives, end with all four entries; then, in-process, builds of another
// version in several forced orders.
func TestNoEntryIsLostWhenTheRegistryServesStaleTags(t *testing.T) {
	t.Parallel()
	reg, proxy := proxied(t, testsvc.RegistryBehaviour{StaleFor: time.Hour})
	fx := makeEntries(t, 64<<10)
	repo := proxy.Host + "/os/stale"
	lockDir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for _, e := range fx.entries {
		b, _ := json.Marshal(e)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessPublishesToARealRegistry$", "-test.count=1")
		cmd.Env = append(os.Environ(), "OCIIMAGE_REAL_ENTRY="+string(b), "OCIIMAGE_REAL_REPO="+repo, "OCIIMAGE_REAL_LOCKDIR="+lockDir)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("build %d: %v\n%s", i, err, outs[i])
		}
	}
	direct := reg.Host + "/os/stale"
	if got := entryKeys(t, direct+":13.1"); !sameKeys(got, allFour) {
		t.Fatalf("four processes: the combined index holds %s, want %s", got, allFour)
	}
	for _, bm := range []string{Virtualization, Baremetal} {
		if got := entryKeys(t, direct+":13.1-"+bm); !sameKeys(got, bm+"/amd64 "+bm+"/arm64") {
			t.Fatalf("four processes: %s index holds %s", bm, got)
		}
	}

	for n, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}} {
		o := realOptions()
		o.Version = "14." + strconv.Itoa(n)
		for _, i := range order {
			p := mustPlan(t, fx.entries[i:i+1], o)
			if _, err := Publish(context.Background(), p, Destination{Repository: repo, LockDir: lockDir, Settle: time.Millisecond, MaxAttempts: 2}); err != nil {
				t.Fatalf("order %v, entry %d: %v", order, i, err)
			}
		}
		if got := entryKeys(t, direct+":"+o.Version); !sameKeys(got, allFour) {
			t.Fatalf("order %v: the combined index holds %s, want %s", order, got, allFour)
		}
	}
}

func realOptions() Options {
	o := testOptions()
	o.Tag = platformTag
	o.CombinedTag = "{{ .Version }}"
	return o
}

func TestHelperProcessPublishesToARealRegistry(t *testing.T) {
	raw := os.Getenv("OCIIMAGE_REAL_ENTRY")
	if raw == "" {
		t.Skip("helper process for TestNoEntryIsLostWhenTheRegistryServesStaleTags")
	}
	var e Entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, []Entry{e}, realOptions())
	d := Destination{Repository: os.Getenv("OCIIMAGE_REAL_REPO"), LockDir: os.Getenv("OCIIMAGE_REAL_LOCKDIR"), Settle: time.Millisecond, MaxAttempts: 2}
	if _, err := Publish(context.Background(), p, d); err != nil {
		t.Fatal(err)
	}
}

// Content-Type with parameters ("…index.v1+json; charset=utf-8") is still an
// index: the next build merges into it, and force (packer build -force)
// keeps the other builds' entries.
func TestAnIndexServedWithContentTypeParametersIsMergedIntoEvenWithForce(t *testing.T) {
	t.Parallel()
	reg, proxy := proxied(t, testsvc.RegistryBehaviour{ContentTypeParams: "; charset=utf-8"})
	fx := makeEntries(t, 8<<10)
	repo := proxy.Host + "/os/params"
	d := Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond}
	o := realOptions()
	mustPublish(t, mustPlan(t, fx.entries[0:1], o), d)
	mustPublish(t, mustPlan(t, fx.entries[1:2], o), d)
	p := mustPlan(t, fx.entries[2:3], o)
	p.Force = true
	mustPublish(t, p, d)
	want := "baremetal/amd64 virtualization/amd64 virtualization/arm64"
	if got := entryKeys(t, reg.Host+"/os/params:13.1"); !sameKeys(got, want) {
		t.Fatalf("the combined index holds %s, want %s", got, want)
	}
}

// Docker Hub answers 401 and GHCR 403 DENIED to a read in a repository that
// does not exist yet, even with valid credentials: the first push there
// works; a wrong password still fails, naming its source, not the secret.
func TestTheFirstPushToANewRepositoryWorksWhereReadsAreRefused(t *testing.T) {
	t.Parallel()
	for _, status := range []int{401, 403} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			reg, proxy := proxied(t, testsvc.RegistryBehaviour{NewRepoStatus: status, Username: "builder", Password: "right-secret"})
			fx := makeEntries(t, 8<<10)
			repo := proxy.Host + "/os/new"
			d := Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond, Backoff: &fastBackoff,
				Username: "builder", Password: "right-secret"}
			mustPublish(t, mustPlan(t, fx.entries[:1], realOptions()), d)
			if got := entryKeys(t, reg.Host+"/os/new:13.1-virtualization"); got != "virtualization/amd64" {
				t.Fatalf("index holds %q", got)
			}
			d.Repository = proxy.Host + "/os/other"
			d.Password = "wrong-secret-31337"
			_, err := Publish(context.Background(), mustPlan(t, fx.entries[:1], realOptions()), d)
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), `username "builder" and password from the configuration`) ||
				!strings.Contains(err.Error(), proxy.Host+"/os/other") || strings.Contains(err.Error(), "wrong-secret-31337") {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

// Builds whose tag template lacks the boot mode share arch tags: the second
// one is refused before it writes, naming both manifests.
func TestAnArchTagOfAnotherBootModeIsAConflictNotAnOverwrite(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 8<<10)
	repo := reg.Host + "/os/clash"
	o := testOptions()
	o.Tag = "{{ .Version }}"
	d := Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond}
	first := mustPlan(t, fx.entries[0:1], o) // amd64 virtualization
	mustPublish(t, first, d)
	second := mustPlan(t, fx.entries[1:2], o) // amd64 baremetal: also 13.1-amd64
	_, err := Publish(context.Background(), second, d)
	if err == nil || !strings.Contains(err.Error(), repo+":13.1-amd64 holds the amd64/virtualization manifest "+first.Manifests[0].Digest.String()) ||
		!strings.Contains(err.Error(), "amd64/baremetal manifest "+second.Manifests[0].Digest.String()) {
		t.Fatalf("error %v", err)
	}
	ref := indexlessGet(t, repo+":13.1-amd64")
	if ref != first.Manifests[0].Digest.String() {
		t.Fatalf("13.1-amd64 now holds %s", ref)
	}
}

// Registries that rate-limit answer 429 with Retry-After: nothing is asked
// again before that time, and the publish then goes through.
func TestA429IsRetriedNoSoonerThanRetryAfterSays(t *testing.T) {
	t.Parallel()
	reg, proxy := proxied(t, testsvc.RegistryBehaviour{Throttle: testsvc.Throttle{Requests: 2, RetryAfter: time.Second}})
	fx := makeEntries(t, 8<<10)
	d := Destination{Repository: proxy.Host + "/os/limited", LockDir: t.TempDir(), Settle: time.Millisecond, Backoff: &fastBackoff}
	mustPublish(t, mustPlan(t, fx.entries[:1], realOptions()), d)
	answered, early := proxy.Throttled()
	if answered < 2 || early != 0 {
		t.Fatalf("%d answers 429, %d requests before the Retry-After time", answered, early)
	}
	if got := entryKeys(t, reg.Host+"/os/limited:13.1"); got != "virtualization/amd64" {
		t.Fatalf("index holds %q", got)
	}
}

// Each manifest GET is a pull on Docker Hub: a build reads each index tag
// once; the merge checks for changes with HEAD.
func TestABuildGetsEachIndexTagOnce(t *testing.T) {
	t.Parallel()
	_, proxy := proxied(t, testsvc.RegistryBehaviour{})
	fx := makeEntries(t, 8<<10)
	d := Destination{Repository: proxy.Host + "/os/gets", LockDir: t.TempDir(), Settle: time.Millisecond}
	p := mustPlan(t, fx.entries, realOptions())
	mustPublish(t, p, d)
	if got := proxy.Count("GET manifest"); got != len(p.Indexes) {
		t.Fatalf("first publish: %d manifest GETs for %d index tags", got, len(p.Indexes))
	}
	proxy.ResetCounts()
	mustPublish(t, mustPlan(t, fx.entries, realOptions()), d)
	if got := proxy.Count("GET manifest"); got != len(p.Indexes) {
		t.Fatalf("second publish: %d manifest GETs for %d index tags", got, len(p.Indexes))
	}
}

// An OCI layout blob is what its digest says: a file changed after the
// builder recorded its sha256 is refused, not written under that digest.
func TestALayoutRefusesAFileThatNoLongerMatchesItsRecordedSHA256(t *testing.T) {
	fx := makeEntries(t, 64<<10)
	p := mustPlan(t, fx.entries[:1], testOptions())
	src := p.Manifests[0].Layers[0].Source
	b, _ := os.ReadFile(src)
	b[100] ^= 0xff // same size, other bytes
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err := Publish(context.Background(), p, Destination{Layout: dir, LockDir: t.TempDir()})
	if !errors.Is(err, ErrBadDigest) || !strings.Contains(err.Error(), src) {
		t.Fatalf("error %v", err)
	}
	h := p.Manifests[0].Layers[0].Digest
	if _, err := os.Stat(filepath.Join(dir, "blobs", h.Algorithm, h.Hex)); err == nil {
		t.Fatal("a blob whose bytes do not match its digest was written")
	}
}

// The lock (and the record beside it) lives in a directory of the user's
// own: another user's file cannot block it.
func TestTheDefaultLockDirectoryIsTheUsersOwn(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	unlock, err := lockFile(context.Background(), "", "registry:r.io/x")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	dir := filepath.Join(tmp, "osimage-oci-"+strconv.Itoa(os.Getuid()))
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("lock directory %s: %v %v", dir, st, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "osimage-oci-*.lock")); len(m) != 1 {
		t.Fatalf("lock files in %s: %v", dir, m)
	}
	if m, _ := filepath.Glob(filepath.Join(tmp, "*.lock")); len(m) != 0 {
		t.Fatalf("lock files straight in the temporary directory: %v", m)
	}
}

// indexlessGet returns the digest a tag holds.
func indexlessGet(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return d.Digest.String()
}

// ECR (IMMUTABLE), Harbor rules and ACR locks refuse to overwrite a tag:
// a re-run of identical content writes no tag at all.
func TestAnIdenticalReRunWritesNoTag(t *testing.T) {
	t.Parallel()
	_, proxy := proxied(t, testsvc.RegistryBehaviour{Immutable: true})
	fx := makeEntries(t, 8<<10)
	d := Destination{Repository: proxy.Host + "/os/immutable", LockDir: t.TempDir(), Settle: time.Millisecond}
	for _, e := range fx.entries {
		mustPublish(t, mustPlan(t, []Entry{e}, realOptions()), Destination{Repository: proxy.Host + "/os/immutable-" + e.Arch + "-" + e.BootMode, LockDir: d.LockDir, Settle: time.Millisecond})
	}
	mustPublish(t, mustPlan(t, fx.entries, realOptions()), d)
	proxy.ResetCounts()
	if _, err := Publish(context.Background(), mustPlan(t, fx.entries, realOptions()), d); err != nil {
		t.Fatalf("identical re-run: %v", err)
	}
	if n, refused := proxy.Count("PUT manifest"), proxy.Refused(); n != 0 || refused != 0 {
		t.Fatalf("identical re-run: %d manifest PUTs, %d refused", n, refused)
	}
}

// GHCR refuses layers over 10 GB: a bigger raw disk is refused before any
// request, saying what to do.
func TestALayerOverGHCRsLimitIsRefusedBeforeAnyRequest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10_000_000_001); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	e := Entry{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{{Path: p, Role: artifact.RoleDisk, Format: "raw", Size: 10_000_000_001, SHA256: strings.Repeat("ab", 32)}}}
	plan := mustPlan(t, []Entry{e}, testOptions())
	_, err = Publish(context.Background(), plan, Destination{Repository: "ghcr.io/example/os", LockDir: t.TempDir(),
		Transport: refuseAll{t}, Keychain: authn.NewMultiKeychain()})
	if err == nil || !strings.Contains(err.Error(), "ghcr.io refuses layers over 10000000000 bytes") || !strings.Contains(err.Error(), "compression") {
		t.Fatalf("error %v", err)
	}
}

// refuseAll is a transport that fails the test on any request.
type refuseAll struct{ t *testing.T }

func (r refuseAll) RoundTrip(req *http.Request) (*http.Response, error) {
	r.t.Errorf("request sent: %s %s", req.Method, req.URL)
	return nil, errors.New("no requests in this test")
}
