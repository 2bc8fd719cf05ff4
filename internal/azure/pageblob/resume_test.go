package pageblob

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

// slowPuts delays every Put Page so a child upload can be killed mid-way.
type slowPuts struct{ d time.Duration }

func (s slowPuts) Do(req *policy.Request) (*http.Response, error) {
	if req.Raw().URL.Query().Get("comp") == "page" {
		time.Sleep(s.d)
	}
	return req.Next()
}

// TestHelperUploadChild is not a test: the resume test runs the test binary
// again with this test selected to get an uploader it can kill -9.
func TestHelperUploadChild(t *testing.T) {
	if os.Getenv("PAGEBLOB_CHILD") != "1" {
		return
	}
	tg, err := NewTarget(ClientConfig{ConnectionString: os.Getenv("PAGEBLOB_CS"), Container: "disks", BlobName: "resume.vhd",
		CreateContainer: true, PerRetryPolicies: []policy.Policy{slowPuts{100 * time.Millisecond}}})
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(2)
	}
	src, err := OpenRaw(os.Getenv("PAGEBLOB_DISK"))
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(2)
	}
	fmt.Println("child: uploading")
	_, err = Upload(context.Background(), tg, src, Options{Parallel: 1})
	fmt.Println("child: finished", err)
	os.Exit(0)
}

func resumeDisk(t *testing.T, dir string) (string, int64) {
	chunks := map[int64][]byte{}
	for i := range 24 {
		chunks[int64(i)*(8<<20)+4096] = randBytes(uint64(100+i), 1<<20)
	}
	return testutil.SparseFile(t, filepath.Join(dir, "resume.raw"), 200<<20, chunks), 24 << 20
}

func TestUploadResumesAfterTheUploaderIsKilled(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw, data := resumeDisk(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperUploadChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PAGEBLOB_CHILD=1", "PAGEBLOB_CS="+az.ConnectionString, "PAGEBLOB_DISK="+raw)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(out))
		cmd.Wait()
		waited <- string(b)
	}()
	tg := target(t, az, "disks", "resume.vhd", true)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child never got a third of the data up:\n%s", <-waited)
		}
		if rs, err := pageRanges(context.Background(), tg); err == nil && sparse.DataBytes(rs) >= data/3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	log := <-waited
	if strings.Contains(log, "child: finished") {
		t.Fatalf("the child finished before it was killed:\n%s", log)
	}
	before := sparse.DataBytes(presentRanges(t, tg))
	if before >= data {
		t.Fatalf("everything was present before the kill (%d bytes)", before)
	}
	p, _ := tg.Blob.GetProperties(context.Background(), nil)
	if len(p.ContentMD5) != 0 || !strings.HasPrefix(meta(p.Metadata, MetaPending), "pending:") {
		t.Fatalf("killed upload does not look pending: md5 %x metadata %v", p.ContentMD5, p.Metadata)
	}

	src, err := OpenRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	res, err := Upload(context.Background(), tg, src, Options{Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.Verified == 0 || res.BytesSent+res.Verified != res.DataBytes || res.BytesSent > data-before+1024 {
		t.Fatalf("resume: %+v (had %d of %d data bytes present)", res, before, data)
	}
	expectMatches(t, tg, src, res.MD5)
	if p, _ := tg.Blob.GetProperties(context.Background(), nil); meta(p.Metadata, MetaPending) != "" || meta(p.Metadata, MetaMD5) != res.MD5Hex {
		t.Fatalf("finished blob metadata %v", p.Metadata)
	}
}

func TestResumeSendsAgainPagesThatDifferAndClearsStalePages(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw, _ := resumeDisk(t, dir)
	// An all-zero page inside the data of the sixth chunk: allocated in
	// the file, so its 4 MiB window is read, but zero, so not sent.
	zeroInData := int64(5*(8<<20) + 4096 + 64<<10)
	if f, err := os.OpenFile(raw, os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	} else if _, err := f.WriteAt(make([]byte, PageSize), zeroInData); err != nil || f.Close() != nil {
		t.Fatal(err)
	}
	src, err := OpenRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	tg := target(t, az, "disks", "stale.vhd", true)
	mustCreateContainer(t, tg)
	if err := create(ctx, tg, src, Options{}, false); err != nil {
		t.Fatal(err)
	}
	good := make([]byte, 1<<20)
	src.ReadAt(good, 4096)
	putPages(t, tg, 4096, good) // right bytes: checked, not sent
	bad := make([]byte, 1<<20)
	src.ReadAt(bad, 8<<20+4096)
	bad[777] ^= 0xFF
	putPages(t, tg, 8<<20+4096, bad)                 // wrong bytes: sent again
	putPages(t, tg, 100<<20+512, randBytes(1, 1024)) // where the disk is zero: cleared
	putPages(t, tg, 16<<20, randBytes(2, 4096))      // zero pages right before data: cleared
	putPages(t, tg, zeroInData, randBytes(3, 512))   // a zero page inside data: cleared
	res, err := Upload(ctx, tg, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(24<<20 - PageSize + vhd.FooterSize); res.DataBytes != want {
		t.Fatalf("data %d bytes, want %d (24 MiB less the zero page, and the footer)", res.DataBytes, want)
	}
	if res.Verified != 1<<20 || res.Cleared != 1024+4096+PageSize || res.BytesSent != res.DataBytes-1<<20 {
		t.Fatalf("verified %d cleared %d sent %d of %d", res.Verified, res.Cleared, res.BytesSent, res.DataBytes)
	}
	expectMatches(t, tg, src, res.MD5)
}

func TestUploadOfAnotherInputRefusesAnUnfinishedBlob(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw, _ := resumeDisk(t, dir)
	src, _ := OpenRaw(raw)
	defer src.Close()
	ctx := context.Background()
	tg := target(t, az, "disks", "pending.vhd", true)
	mustCreateContainer(t, tg)
	if err := create(ctx, tg, src, Options{}, false); err != nil {
		t.Fatal(err)
	}
	// Resuming changes the blob's bytes too: BeforeChange is asked.
	var how string
	stop := errors.New("stop")
	if _, err := Upload(ctx, tg, src, Options{BeforeChange: func(h string) error { how = h; return stop }}); !errors.Is(err, stop) || how != "resumed" {
		t.Fatalf("resume: BeforeChange(%q), %v", how, err)
	}
	os.Chtimes(raw, time.Now(), time.Now().Add(-time.Hour)) // another input, same size
	other, _ := OpenRaw(raw)
	defer other.Close()
	if _, err := Upload(ctx, tg, other, Options{OverwriteOption: "overwrite_blob"}); err == nil || !strings.Contains(err.Error(), "unfinished upload of another input") {
		t.Fatalf("got %v", err)
	}
	res, err := Upload(ctx, tg, other, Options{Overwrite: true})
	if err != nil || res.Resumed {
		t.Fatalf("overwrite: %+v %v", res, err)
	}
	expectMatches(t, tg, other, res.MD5)
}

// faultProxy sits between the SDK and Azurite and, by a fixed pattern,
// answers 503 or 429, drops the connection before forwarding, or forwards
// and then drops the connection instead of answering.
type faultProxy struct {
	target *url.URL
	n      atomic.Int64
	faults atomic.Int64
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := p.n.Add(1)
	drop := func() {
		p.faults.Add(1)
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}
	switch {
	case i%9 == 2:
		p.faults.Add(1)
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case i%9 == 5:
		p.faults.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
		return
	case i%11 == 7:
		io.CopyN(io.Discard, r.Body, 1000)
		drop()
		return
	case i%13 == 3:
		// Forward, so the service applies it, but lose the answer.
		rec := &discard{h: http.Header{}}
		httputil.NewSingleHostReverseProxy(p.target).ServeHTTP(rec, r)
		drop()
		return
	}
	httputil.NewSingleHostReverseProxy(p.target).ServeHTTP(w, r)
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func TestUploadThroughThrottlingAndDroppedConnectionsStillMatches(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	u, _ := url.Parse(az.BlobURL)
	u.Path = ""
	proxy := &faultProxy{target: u}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	defer srv.Close()
	cs := strings.Replace(az.ConnectionString, u.Host, ln.Addr().String(), 1)
	tg, err := NewTarget(ClientConfig{ConnectionString: cs, Container: "faults", BlobName: "f.vhd", CreateContainer: true, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := resumeDisk(t, t.TempDir())
	src, _ := OpenRaw(raw)
	defer src.Close()
	res, err := Upload(context.Background(), tg, src, Options{Parallel: 8})
	if err != nil {
		t.Fatalf("upload through faults: %v", err)
	}
	if proxy.faults.Load() < 5 {
		t.Fatalf("only %d faults injected in %d requests", proxy.faults.Load(), proxy.n.Load())
	}
	t.Logf("%d faults in %d requests", proxy.faults.Load(), proxy.n.Load())
	direct := target(t, az, "faults", "f.vhd", false)
	expectMatches(t, direct, src, res.MD5)
}

func TestAnUnfinishedUploadOfTheSameDigestResumesWhateverTheModificationTime(t *testing.T) {
	t.Parallel()
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw, _ := resumeDisk(t, dir)
	const sum = "0f343b0931126a20f133d67c2b018a3b5e2b1b1b5e2f2a8c7d0b6f0e1f2a3b4c"
	src, _ := OpenRaw(raw)
	defer src.Close()
	src.SetDigest(sum)
	ctx := context.Background()
	tg := target(t, az, "disks", "digest.vhd", true)
	mustCreateContainer(t, tg)
	if err := create(ctx, tg, src, Options{}, false); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(raw, time.Now(), time.Now().Add(-time.Hour)) // a fresh copy of the same disk
	same, _ := OpenRaw(raw)
	defer same.Close()
	other, _ := OpenRaw(raw)
	defer other.Close()
	other.SetDigest(strings.Repeat("1", 64))
	if _, err := Upload(ctx, tg, other, Options{}); err == nil || !strings.Contains(err.Error(), "unfinished upload of another input") {
		t.Fatalf("another digest: %v", err)
	}
	if _, err := Upload(ctx, tg, same, Options{}); err == nil || !strings.Contains(err.Error(), "unfinished upload of another input") {
		t.Fatalf("no digest, another modification time: %v", err)
	}
	same.SetDigest(" " + strings.ToUpper(sum) + "\n")
	res, err := Upload(ctx, tg, same, Options{})
	if err != nil || !res.Resumed {
		t.Fatalf("same digest: %+v %v", res, err)
	}
	expectMatches(t, tg, same, res.MD5)
}
