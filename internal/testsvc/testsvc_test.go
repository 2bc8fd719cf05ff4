package testsvc

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

func gone(t *testing.T, p *Process, addr string) {
	t.Helper()
	if !p.Exited() {
		t.Fatalf("%s still running after Stop", p.Name)
	}
	if err := syscall.Kill(-p.Pid(), 0); err == nil {
		t.Fatalf("%s's process group %d still has members after Stop", p.Name, p.Pid())
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections on %s after Stop", p.Name, addr)
	}
}

func TestAzuriteStartsAnswersAndStops(t *testing.T) {
	a := StartAzurite(t)
	resp, err := http.Get(a.BlobURL + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Anonymous listing is refused by a real blob service, with its headers.
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-request-id") == "" {
		t.Fatalf("unexpected answer %s %v", resp.Status, resp.Header)
	}
	addr := a.BlobURL[len("http://"):]
	addr = addr[:len(addr)-len("/"+DevStoreAccount)]
	a.Stop()
	gone(t, a.Process, addr)
}

func TestRegistryStartsAnswersAndStops(t *testing.T) {
	r := StartRegistry(t)
	resp, err := http.Get("http://" + r.Host + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("catalog: %s", resp.Status)
	}
	r.Stop()
	gone(t, r.Process, r.Host)
}
