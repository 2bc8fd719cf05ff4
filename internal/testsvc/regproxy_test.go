package testsvc

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The stand-in must do what it claims, or the tests behind it prove
// nothing: each behaviour, seen by go-containerregistry as a client.
func TestTheRegistryProxyBehavesAsTheRealRegistriesItCites(t *testing.T) {
	reg := StartRegistry(t)
	p := StartRegistryProxy(t, reg.Host, RegistryBehaviour{StaleFor: time.Hour, ContentTypeParams: "; charset=utf-8"})
	tag := func(s string) name.Tag {
		t.Helper()
		n, err := name.NewTag(p.Host + "/os/x:" + s)
		must(t, err)
		return n
	}
	one, err := random.Image(64, 1)
	must(t, err)
	two, err := random.Image(64, 1)
	must(t, err)
	d1, _ := one.Digest()
	d2, _ := two.Digest()

	// Stale: after a write, and after a second one, the tag still reads as
	// it was before the first (absent): the oldest version stays visible.
	for _, img := range []v1.Image{one, two} {
		must(t, remote.Write(tag("t"), img))
		if _, err := remote.Head(tag("t")); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("a tag written a moment ago: %v, want a stale 404", err)
		}
	}
	p.Set(RegistryBehaviour{ContentTypeParams: "; charset=utf-8"})
	desc, err := remote.Get(tag("t"))
	must(t, err)
	if desc.Digest != d2 || !strings.HasSuffix(string(desc.MediaType), "; charset=utf-8") {
		t.Fatalf("fresh again: %s %q, want %s with parameters", desc.Digest, desc.MediaType, d2)
	}
	if p.Count("PUT manifest") != 2 || p.Count("GET manifest") == 0 {
		t.Fatalf("counts: %d PUT, %d GET", p.Count("PUT manifest"), p.Count("GET manifest"))
	}

	// Immutable: ECR's answer to any overwrite.
	p.Set(RegistryBehaviour{Immutable: true})
	if err := remote.Write(tag("t"), one); err == nil || !strings.Contains(err.Error(), "TAG_INVALID") || p.Refused() != 1 {
		t.Fatalf("overwrite: %v (%d refused)", err, p.Refused())
	}
	must(t, remote.Write(tag("new"), one))

	// A new repository: a pull token is refused, a push token may read.
	p.Set(RegistryBehaviour{NewRepoStatus: 401, Username: "u", Password: "pw"})
	auth := remote.WithAuth(&authn.Basic{Username: "u", Password: "pw"})
	fresh, _ := name.NewTag(p.Host + "/os/fresh:1")
	if _, err := remote.Get(fresh, auth); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("read in a new repository: %v", err)
	}
	must(t, remote.Write(fresh, one, auth))
	if desc, err := remote.Get(fresh, auth); err != nil || desc.Digest != d1 {
		t.Fatalf("read after the push: %v", err)
	}
	if _, err := remote.Get(fresh, remote.WithAuth(&authn.Basic{Username: "u", Password: "wrong"})); err == nil {
		t.Fatal("a wrong password was given a token")
	}
	p.Set(RegistryBehaviour{NewRepoStatus: 403, Username: "u", Password: "pw"})
	other, _ := name.NewTag(p.Host + "/os/other:1")
	if _, err := remote.Get(other, auth); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("403: %v", err)
	}

	// 429 with Retry-After; a request before that time is early.
	p.Set(RegistryBehaviour{Throttle: Throttle{Requests: 1, RetryAfter: time.Hour}})
	for i := 0; i < 2; i++ {
		resp, err := http.Get("http://" + p.Host + "/v2/os/x/manifests/t")
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3600" {
			t.Fatalf("request %d: %d, Retry-After %q", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if answered, early := p.Throttled(); answered != 2 || early != 1 {
		t.Fatalf("%d answered 429, %d early", answered, early)
	}
	// The ping is not limited.
	resp, err := http.Get("http://" + p.Host + "/v2/")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ping: %d", resp.StatusCode)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
