package gallery

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// fakeClock is the time of the fake identity services, in seconds; the
// tests move it forward instead of sleeping.
type fakeClock struct{ now atomic.Int64 }

// idToken is an unsigned JWT (the fake token endpoint reads, not checks,
// it) with the given expiry.
func idToken(sub string, exp int64) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(map[string]any{"iss": "https://token.actions.example", "sub": sub, "aud": oidcAudience, "exp": exp})
	return head + "." + enc.EncodeToString(body) + "."
}

// oidcServer is GitHub Actions' ID token service: a bearer request token
// in, an ID token living 5 minutes of the fake clock out.
func oidcServer(t *testing.T, clock *fakeClock, requestToken string, served *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "bearer "+requestToken || r.URL.Query().Get("audience") != oidcAudience || r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, "bad request token or audience", http.StatusUnauthorized)
			return
		}
		n := served.Add(1)
		json.NewEncoder(w).Encode(map[string]string{"value": idToken(fmt.Sprintf("repo:o/r:%d", n), clock.now.Load()+300)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// entraServer is Microsoft Entra ID's token endpoint for a client
// assertion: it refuses an assertion past its expiry as Entra does
// (AADSTS700024) and issues access tokens that expire at once (azcore and
// MSAL keep time with the real clock, not the fake one), so every request
// asks for a new token, as every request in a build long past an access
// token's life does.
func entraServer(t *testing.T, clock *fakeClock, refused *atomic.Int64) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
			tenant := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
			json.NewEncoder(w).Encode(map[string]string{"token_endpoint": srv.URL + "/" + tenant + "/oauth2/v2.0/token",
				"authorization_endpoint": srv.URL + "/" + tenant + "/oauth2/v2.0/authorize", "issuer": srv.URL + "/" + tenant + "/v2.0"})
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			r.ParseForm()
			parts := strings.Split(r.PostForm.Get("client_assertion"), ".")
			var claims struct{ Exp int64 }
			if len(parts) == 3 {
				b, _ := base64.RawURLEncoding.DecodeString(parts[1])
				json.Unmarshal(b, &claims)
			}
			if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || claims.Exp <= clock.now.Load() {
				refused.Add(1)
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client", "error_codes": []int{700024},
					"error_description": "AADSTS700024: Client assertion is not within its valid time range."})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + parts[1][:8], "token_type": "Bearer", "expires_in": 0})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// slowUpload moves the fake clock 10 minutes forward after each Resource
// Manager request, as a long upload does between the gallery check and
// the version's creation, and records the bearer tokens sent.
type slowUpload struct {
	next   policy.Transporter
	clock  *fakeClock
	tokens []string
}

func (s *slowUpload) Do(r *http.Request) (*http.Response, error) {
	s.tokens = append(s.tokens, r.Header.Get("Authorization"))
	defer s.clock.now.Add(600)
	return s.next.Do(r)
}

func TestOIDCFetchesAFreshIDTokenForEveryTokenRequestOfALongBuild(t *testing.T) {
	clearAzureEnv(t)
	az := testsvc.StartAzurite(t)
	clock := &fakeClock{}
	clock.now.Store(time.Now().Unix())
	var served, refused atomic.Int64
	idp := oidcServer(t, clock, "gh-request-token", &served)
	entra := entraServer(t, clock, &refused)
	raw := testutil.SparseFile(t, filepath.Join(t.TempDir(), "disk.raw"), 1<<20, map[int64][]byte{0: []byte("x")})
	in := &artifact.Artifact{Builder: "packer.file", Variant: almaVariant("x86_64"), Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	run := func(auth map[string]interface{}) (string, int, error) {
		cfg := map[string]interface{}{"storage_connection_string": az.ConnectionString, "create_container": true,
			"tenant_id": "tenant1", "client_id": "app1", "active_directory_authority_host": entra.URL + "/",
			"shared_image_gallery_destination": map[string]interface{}{"image_version": "1.0.0"}}
		for k, v := range auth {
			cfg[k] = v
		}
		p, err := configure(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		store := newStore()
		arm := &slowUpload{next: store.Transport(), clock: clock}
		p.armTransport, p.authTransport = arm, entra.Client()
		var out bytes.Buffer
		_, _, _, err = p.PostProcess(context.Background(), &packersdk.BasicUi{Writer: &out, ErrorWriter: &out, PB: &packersdk.NoopProgressTracker{}}, in)
		return out.String(), len(arm.tokens), err
	}

	// The OIDC options: a new ID token for every token request.
	out, requests, err := run(map[string]interface{}{"oidc_request_url": idp.URL + "/token?api-version=2.0", "oidc_request_token": "gh-request-token"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if refused.Load() != 0 || served.Load() < int64(requests) || requests < 5 {
		t.Fatalf("%d ARM requests, %d ID tokens served, %d assertions refused", requests, served.Load(), refused.Load())
	}
	if !strings.Contains(out, "Authenticated to Azure with OIDC federation") {
		t.Fatalf("the build does not say which source authenticated:\n%s", out)
	}
	if strings.Contains(out, "gh-request-token") {
		t.Fatal("the request token was printed")
	}

	// GitHub Actions' variables are the defaults.
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", idp.URL+"/token?api-version=2.0")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-request-token")
	before := served.Load()
	if out, _, err := run(nil); err != nil || served.Load() == before {
		t.Fatalf("ACTIONS_ID_TOKEN_REQUEST_*: %v, %d tokens\n%s", err, served.Load()-before, out)
	}

	// One assertion for the whole build, as the Azure CLI login of
	// azure/login amounts to: refused once the clock passes its life.
	_, _, err = run(map[string]interface{}{"client_jwt": idToken("static", clock.now.Load()+300)})
	if err == nil || !strings.Contains(err.Error(), "AADSTS700024") || !strings.Contains(err.Error(), "no Azure credential worked") {
		t.Fatalf("a static assertion outlived: %v", err)
	}
}

func TestClientIDAloneIsAManagedOrWorkloadIdentityNeverIgnored(t *testing.T) {
	clearAzureEnv(t)
	// Managed identity, App Service style, on loopback: no identity with
	// this client id (400, not retried). The error says what else to give.
	msi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"statusCode":400,"message":"Unable to load the proper Managed Identity."}`, http.StatusBadRequest)
	}))
	t.Cleanup(msi.Close)
	t.Setenv("IDENTITY_ENDPOINT", msi.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "h")
	err := publishToGallery(t, map[string]interface{}{"client_id": "app1"}, nil)
	for _, want := range []string{"client_id app1 without client_secret, client_jwt or OIDC", "oidc_request_url", "ACTIONS_ID_TOKEN_REQUEST_URL",
		"user-assigned managed identity"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}

	// With AZURE_FEDERATED_TOKEN_FILE, workload identity with this client
	// id authenticates, and the build says so.
	clock := &fakeClock{}
	clock.now.Store(time.Now().Unix())
	var refused atomic.Int64
	entra := entraServer(t, clock, &refused)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(idToken("k8s", clock.now.Load()+3600)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tok)
	az := testsvc.StartAzurite(t)
	raw := testutil.SparseFile(t, filepath.Join(t.TempDir(), "disk.raw"), 1<<20, map[int64][]byte{0: []byte("x")})
	in := &artifact.Artifact{Builder: "packer.file", Variant: almaVariant("x86_64"), Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	p, err := configure(t, map[string]interface{}{"storage_connection_string": az.ConnectionString, "create_container": true,
		"tenant_id": "tenant1", "client_id": "app1", "active_directory_authority_host": entra.URL + "/",
		"shared_image_gallery_destination": map[string]interface{}{"image_version": "1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	p.armTransport, p.authTransport = newStore().Transport(), entra.Client()
	var out bytes.Buffer
	if _, _, _, err := p.PostProcess(context.Background(), &packersdk.BasicUi{Writer: &out, ErrorWriter: &out, PB: &packersdk.NoopProgressTracker{}}, in); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Authenticated to Azure with workload identity (client_id, AZURE_FEDERATED_TOKEN_FILE)") {
		t.Fatalf("the build does not say which source authenticated:\n%s", out.String())
	}
}
