package pageblob

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// oneRetry gives up quickly on a port nobody listens on.
var oneRetry = policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}

// fakeSAS is shaped like a container SAS; its signature holds the
// characters that URL encoding changes (+, /, =).
const fakeSAS = "sv=2026-12-06&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwdl&skoid=0b1c2d3e-oid&sig=Ab%2Bcd%2Fef0123456789ghIJklMNopQRstUVwx%3D"

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// expectNoSAS fails when text holds the SAS or any of its values, in any
// encoding: raw, query-escaped, path-escaped or decoded.
func expectNoSAS(t *testing.T, what, text, token string) {
	t.Helper()
	q, err := url.ParseQuery(strings.TrimPrefix(token, "?"))
	if err != nil {
		t.Fatal(err)
	}
	leaks := []string{token}
	for k, vs := range q {
		for _, v := range vs {
			if k == "sv" || k == "sr" || len(v) < 4 {
				continue // too short or too common to search for alone
			}
			leaks = append(leaks, v, url.QueryEscape(v), url.PathEscape(v), k+"="+url.QueryEscape(v))
		}
	}
	for _, l := range leaks {
		if strings.Contains(text, l) {
			t.Errorf("%s holds %q of the SAS:\n%s", what, l, text)
		}
	}
}

func TestErrorsOfAnUnreachableEndpointCarryNoSAS(t *testing.T) {
	addr := closedPort(t)
	raw := smallDisk(t, t.TempDir(), 7)
	src, err := OpenRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, c := range []ClientConfig{
		{Endpoint: "http://" + addr + "/devstoreaccount1", SAS: "?" + fakeSAS},
		{ConnectionString: "BlobEndpoint=http://" + addr + "/devstoreaccount1;SharedAccessSignature=" + fakeSAS},
	} {
		c.Container, c.BlobName, c.Retry, c.CreateContainer = "disks", "d.vhd", oneRetry, true
		tg, err := NewTarget(c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Upload(context.Background(), tg, src, Options{})
		if err == nil {
			t.Fatal("upload to a closed port succeeded")
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Fatalf("want the transport's *url.Error kept for errors.As: %T %v", err, err)
		}
		expectNoSAS(t, "the error", err.Error(), fakeSAS)
		expectNoSAS(t, "the *url.Error", ue.Error(), fakeSAS)
		if !strings.Contains(err.Error(), addr+"/devstoreaccount1/disks/d.vhd") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("the error no longer says where and what: %v", err)
		}
	}
}

// dropPutPages forwards everything but Put Page, whose connection it
// closes: the page writes fail after the retries.
type dropPutPages struct{ target *url.URL }

func (p dropPutPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page" {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	httputil.NewSingleHostReverseProxy(p.target).ServeHTTP(w, r)
}

func TestErrorsOfFailedPageWritesCarryNoSAS(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	// A real container SAS, signed with the development key, that
	// Azurite accepts.
	cred, err := service.NewSharedKeyCredential(testsvc.DevStoreAccount, testsvc.DevStoreKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour), ContainerName: "sas",
		Permissions: (&sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}).String()}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	token := qp.Encode()
	cc, err := container.NewClientFromConnectionString(az.ConnectionString, "sas", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(az.BlobURL)
	u.Path = ""
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: dropPutPages{u}}
	go srv.Serve(ln)
	defer srv.Close()
	endpoint := strings.Replace(az.BlobURL, u.Host, ln.Addr().String(), 1)

	raw := smallDisk(t, t.TempDir(), 8)
	for i, c := range []ClientConfig{
		{Endpoint: endpoint, SAS: token},
		{ConnectionString: "BlobEndpoint=" + endpoint + ";SharedAccessSignature=" + token},
	} {
		src, err := OpenRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		c.Container, c.BlobName, c.Retry = "sas", []string{"a.vhd", "b.vhd"}[i], oneRetry
		tg, err := NewTarget(c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Upload(context.Background(), tg, src, Options{Parallel: 2})
		src.Close()
		if err == nil || !strings.Contains(err.Error(), "put pages") {
			t.Fatalf("want a failed Put Page: %v", err)
		}
		expectNoSAS(t, "the error", err.Error(), token)
	}
}

func TestRedactKeepsSafeParametersAndRemovesEverythingElse(t *testing.T) {
	key := "c2VjcmV0LWFjY291bnQta2V5LTEyMzQ="
	in := errors.New(`Put "https://acct.blob.core.windows.net/c/b.vhd?comp=page&se=2099&sig=Ab%2Bcd&sp=rw": EOF; key ` + key + `; token sv=1&sig=Ab+cd`)
	got := Redact(in, []string{key, "Ab+cd"}).Error()
	want := `Put "https://acct.blob.core.windows.net/c/b.vhd?comp=page&se=REDACTED&sig=REDACTED&sp=REDACTED": EOF; key REDACTED; token sv=1&sig=REDACTED`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if Redact(nil, nil) != nil {
		t.Fatal("nil is not nil")
	}
	if !errors.Is(Redact(in, nil), in) {
		t.Fatal("the original error is not in the chain")
	}
}

func TestSecretsAreTheSASItsValuesAndTheConnectionStringsKeyAndSAS(t *testing.T) {
	got := Secrets(ClientConfig{SAS: "?sv=2026-12-06&sr=c&comp=list&sig=S1gnature%2B&skoid=oid-1",
		ConnectionString: "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=K3yK3yK3y==;SharedAccessSignature=sv=1&sig=Other%3D"})
	for _, want := range []string{"sv=2026-12-06&sr=c&comp=list&sig=S1gnature%2B&skoid=oid-1", "S1gnature+", "oid-1", "K3yK3yK3y==",
		"sv=1&sig=Other%3D", "Other=", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=K3yK3yK3y==;SharedAccessSignature=sv=1&sig=Other%3D"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets lacks %q: %q", want, got)
		}
	}
	for _, not := range []string{"2026-12-06", "c", "list", "acct", "https"} {
		if slices.Contains(got, not) {
			t.Errorf("Secrets holds %q, which is no secret and would blank harmless text: %q", not, got)
		}
	}
	if len(Secrets(ClientConfig{})) != 0 {
		t.Error("secrets without a SAS or connection string")
	}
	// A joined error's *url.Errors are redacted too.
	e1 := &url.Error{Op: "Put", URL: "https://a.blob.core.windows.net/c/b?sig=AAA", Err: errors.New("EOF")}
	e2 := &url.Error{Op: "Get", URL: "https://a.blob.core.windows.net/c/b?se=BBB", Err: errors.New("EOF")}
	err := Redact(fmt.Errorf("x: %w", errors.Join(e1, e2)), nil)
	if strings.Contains(e1.URL+e2.URL+err.Error(), "AAA") || strings.Contains(e1.URL+e2.URL+err.Error(), "BBB") {
		t.Fatalf("joined errors: %v / %s / %s", err, e1.URL, e2.URL)
	}
}
