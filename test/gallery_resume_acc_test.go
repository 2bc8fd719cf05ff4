package test

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

const resumeTemplate = acc.RequiredPlugins + `
variable "src" { type = string }
variable "out" { type = string }
variable "storage" {
  type      = string
  sensitive = true
}

source "osimage-disk" "disk" {
  source_image     = var.src
  key              = "resume-x86_64-virtualization"
  arch             = "x86_64"
  boot_files       = "never"
  output_directory = var.out
}

build {
  sources = ["source.osimage-disk.disk"]
  post-processor "osimage-gallery" {
    storage_connection_string = var.storage
    create_container          = true
    blob_name                 = "resume.vhd"
    parallel                  = 1
  }
}
`

// slowPutPages forwards to Azurite, holding each Put Page for delay and
// counting those that went through.
type slowPutPages struct {
	target *url.URL
	delay  atomic.Int64 // nanoseconds
	puts   atomic.Int64
}

func (p *slowPutPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	put := r.Method == http.MethodPut && r.URL.Query().Get("comp") == "page" && r.Header.Get("x-ms-page-write") == "update"
	if put {
		time.Sleep(time.Duration(p.delay.Load()))
	}
	sw := &statusWriter{ResponseWriter: w}
	httputil.NewSingleHostReverseProxy(p.target).ServeHTTP(sw, r)
	if put && sw.status == http.StatusCreated {
		p.puts.Add(1)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// TestAnUploadKilledWithPackerResumesInTheNextBuild is what a user does
// after a lost CI runner: kill -9 of packer's process group in the middle
// of the upload, then the same packer build again. osimage-disk copies
// the disk anew (another modification time), but its artifact records the
// disk's sha256, so the second build resumes the blob: the pages the
// first one sent are checked, not sent again.
func TestAnUploadKilledWithPackerResumesInTheNextBuild(t *testing.T) {
	t.Parallel()
	env, az := acc.Setup(t), testsvc.StartAzurite(t)
	u, _ := url.Parse(az.BlobURL)
	u.Path = ""
	proxy := &slowPutPages{target: u}
	proxy.delay.Store(int64(400 * time.Millisecond))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	storage := strings.Replace(az.ConnectionString, u.Host, ln.Addr().String(), 1)

	dir := t.TempDir()
	data := make([]byte, 32<<20) // 8 Put Page requests of 4 MiB
	r := rand.New(rand.NewPCG(20, 10))
	for i := range data {
		data[i] = byte(r.UintN(255) + 1)
	}
	src := testutil.SparseFile(t, filepath.Join(dir, "src.raw"), 64<<20, map[int64][]byte{8 << 20: data})
	acc.WriteTemplate(t, dir, "resume.pkr.hcl", resumeTemplate)
	args := func(out string) []string {
		return []string{"build", "-var", "src=" + src, "-var", "out=" + filepath.Join(dir, out), "-var", "storage=" + storage, "."}
	}

	first := env.Start(t, dir, nil, args("out1")...)
	first.WaitUntil(t, "3 Put Page requests", 2*time.Minute, func() bool { return proxy.puts.Load() >= 3 })
	first.Kill(t, 30*time.Second)
	time.Sleep(time.Second) // requests under way when packer died end in the proxy
	sentBefore := proxy.puts.Load()
	if sentBefore >= 8 {
		t.Fatalf("the first build sent all %d requests before it was killed:\n%s", sentBefore, first.Output())
	}

	proxy.delay.Store(0)
	res := env.MustRun(t, dir, nil, args("out2")...)
	out := res.Output()
	if !strings.Contains(out, "resuming the unfinished upload") {
		t.Fatalf("the second build did not resume:\n%s", out)
	}
	m := regexp.MustCompile(`\((\d+) bytes of data, (\d+) checked already present\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no upload summary:\n%s", out)
	}
	verified, _ := strconv.ParseInt(m[2], 10, 64)
	if verified < 3<<22 {
		t.Fatalf("only %d bytes checked already present after %d requests of 4 MiB went through:\n%s", verified, sentBefore, out)
	}
	// 8 requests of data and 1 of the footer in all; what was checked was
	// not sent again.
	if again := proxy.puts.Load() - sentBefore; again > 9-verified>>22 {
		t.Fatalf("the second build sent %d Put Page requests although %d bytes were checked present; the first had sent %d", again, verified, sentBefore)
	}
	if _, err := os.Stat(filepath.Join(dir, "out2")); err != nil {
		t.Fatal(err)
	}
}
