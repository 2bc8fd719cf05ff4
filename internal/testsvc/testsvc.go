// Package testsvc starts the real services tests talk to (Azurite for blob
// storage, the distribution registry for OCI), each on a free loopback port,
// waits until it answers, and stops it (with all its children) when the
// test ends. Tests never leave processes behind.
package testsvc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// Process is a started service.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *testutil.SyncBuffer
}

// Stop kills the service's whole process group and waits for it. It is
// safe to call more than once.
func (p *Process) Stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM but outlived the leader.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// Pid returns the process id of the service's leader.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the service's leader has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns what the service printed so far.
func (p *Process) Log() string { return p.log.String() }

// start runs cmd in its own process group, copying its output to a log and
// to lines (if not nil).
func start(t testing.TB, name string, cmd *exec.Cmd, lines chan<- string) *Process {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{}), log: &testutil.SyncBuffer{}}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.log.Write([]byte(line + "\n"))
			if lines != nil {
				select {
				case lines <- line:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	return p
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// tool finds a program: env override, the repository's .tools, or PATH.
func tool(t testing.TB, envVar, repoRel, name, install string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	if p := filepath.Join(repoRoot(), repoRel); isExec(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: run %s (or set %s)", name, install, envVar)
	if os.Getenv(testutil.RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until check accepts a response, the process exits, or
// the timeout passes.
func waitHTTP(t testing.TB, p *Process, url string, timeout time.Duration, check func(*http.Response) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			ok := check(resp)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if ok {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it answered on %s:\n%s", p.Name, url, p.Log())
		case <-ctx.Done():
			t.Fatalf("%s did not answer on %s within %s:\n%s", p.Name, url, timeout, p.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DevStoreAccount and DevStoreKey are Azurite's well-known development
// credentials (public, documented by Microsoft).
const (
	DevStoreAccount = "devstoreaccount1"
	DevStoreKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is a running Azurite blob service.
type Azurite struct {
	*Process
	// BlobURL is the account's blob endpoint, e.g. http://127.0.0.1:PORT/devstoreaccount1.
	BlobURL string
	// ConnectionString authenticates with the development account key.
	ConnectionString string
}

var azuriteListen = regexp.MustCompile(`listens on (http://127\.0\.0\.1:\d+)`)

// StartAzurite starts azurite-blob in memory on a free port.
func StartAzurite(t testing.TB) *Azurite {
	t.Helper()
	bin := tool(t, "AZURITE_BLOB", ".tools/azurite/node_modules/.bin/azurite-blob", "azurite-blob", "make tools")
	lines := make(chan string, 64)
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", "0",
		"--skipApiVersionCheck", "--disableTelemetry", "--inMemoryPersistence", "--loose")
	p := start(t, "azurite", cmd, lines)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line := <-lines:
			if m := azuriteListen.FindStringSubmatch(line); m != nil {
				a := &Azurite{Process: p, BlobURL: m[1] + "/" + DevStoreAccount}
				a.ConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + DevStoreAccount +
					";AccountKey=" + DevStoreKey + ";BlobEndpoint=" + a.BlobURL + ";"
				// Any answer from the blob service (403 to an anonymous
				// request) proves it serves requests, not just listens.
				waitHTTP(t, p, a.BlobURL+"?comp=list", 30*time.Second, func(r *http.Response) bool {
					return r.Header.Get("x-ms-request-id") != ""
				})
				return a
			}
		case <-p.done:
			t.Fatalf("azurite exited during start-up:\n%s", p.Log())
		case <-deadline:
			t.Fatalf("azurite did not report its port within 60s:\n%s", p.Log())
		}
	}
}

// Registry is a running distribution (v3) OCI registry.
type Registry struct {
	*Process
	// Host is host:port, e.g. 127.0.0.1:5123.
	Host string
	// Dir is the registry's storage directory.
	Dir string
}

// StartRegistry starts the distribution registry with filesystem storage in
// a temporary directory on a free port.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	bin := tool(t, "REGISTRY_BIN", ".tools/bin/registry", "registry", "make tools")
	dir := t.TempDir()
	var last *Process
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		host := fmt.Sprintf("127.0.0.1:%d", port)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
		p := start(t, "registry", cmd, nil)
		last = p
		ok := func() bool {
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if p.Exited() {
					return false // port taken between FreePort and listen: retry
				}
				resp, err := http.Get("http://" + host + "/v2/")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 && resp.Header.Get("Docker-Distribution-Api-Version") != "" {
						return true
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			return false
		}()
		if ok {
			return &Registry{Process: p, Host: host, Dir: filepath.Join(dir, "data")}
		}
		p.Stop()
	}
	t.Fatalf("registry did not start:\n%s", last.Log())
	return nil
}
