package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

func init() {
	register(suite{name: "upload", title: "osimage-gallery: page-blob upload (4 GiB sparse disk, 400 MiB of data, Azurite)", run: benchUpload})
}

const devKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// countingProxy forwards TCP to addr and counts the bytes clients send:
// what each uploader puts on the wire, headers included.
type countingProxy struct {
	ln   net.Listener
	sent atomic.Int64
}

func startProxy(addr string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { io.Copy(c, s); c.Close() }()
				// Counted as they pass, not when the connection closes:
				// a client's kept-alive connections close only as it
				// exits, after the run's count is read.
				io.Copy(s, countingReader{c, &p.sent})
			}()
		}
	}()
	return p, nil
}

// azurite runs Azurite in memory on a fixed loopback address, with the
// container "bench". Reset stops it and starts a fresh, empty one, so every
// upload meets the same server (as the oci suite's registry); cpu is the
// CPU time it has used since.
type azurite struct {
	root, addr string
	cmd        *exec.Cmd
	cpu0       time.Duration
}

func (a *azurite) reset() error {
	a.stop()
	host, port, _ := net.SplitHostPort(a.addr)
	cmd := exec.Command(filepath.Join(a.root, ".tools/azurite/node_modules/.bin/azurite-blob"), "--blobHost", host, "--blobPort", port,
		"--skipApiVersionCheck", "--disableTelemetry", "--inMemoryPersistence", "--loose")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("azurite (make tools): %w", err)
	}
	a.cmd = cmd
	found := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listens on http://"+a.addr) {
				found <- struct{}{}
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("azurite did not start on %s", a.addr)
	}
	cc, err := container.NewClientFromConnectionString(connectionString(a.addr), "bench", nil)
	if err != nil {
		return err
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		return fmt.Errorf("create the container: %w", err)
	}
	a.cpu0, err = procCPU(cmd.Process.Pid)
	return err
}

// cpu is the CPU time Azurite used since reset.
func (a *azurite) cpu() (time.Duration, error) {
	t, err := procCPU(a.cmd.Process.Pid)
	return t - a.cpu0, err
}

func (a *azurite) stop() {
	if a.cmd != nil {
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		a.cmd.Wait()
		a.cmd = nil
	}
}

// blob is a client for a blob in the container, straight to Azurite.
func (a *azurite) blob(name string) (pageblob.Target, error) {
	return pageblob.NewTarget(pageblob.ClientConfig{ConnectionString: connectionString(a.addr), Container: "bench", BlobName: name})
}

func connectionString(addr string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://%s/devstoreaccount1;", devKey, addr)
}

func benchUpload(cfg config) (string, error) {
	az, err := exec.LookPath("az")
	if err != nil {
		return "", fmt.Errorf("az not found: the upload benchmark compares with Debian's azure-cli (apt-get install azure-cli; scripts/bench.sh installs it)")
	}
	root, _ := os.Getwd()
	dir := filepath.Join(cfg.work, "upload")
	os.MkdirAll(dir, 0o755)
	raw := filepath.Join(dir, "input.raw")
	if err := sparseInput(raw, 4<<30, 400<<20); err != nil {
		return "", err
	}
	fixed := filepath.Join(dir, "input.vhd")
	os.Remove(fixed)
	if _, err := vhd.Convert(context.Background(), raw, fixed, vhd.Options{}); err != nil {
		return "", err
	}
	defer os.Remove(fixed)
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	proxy, err := startProxy(addr)
	if err != nil {
		return "", err
	}
	defer proxy.ln.Close()
	cs, direct := connectionString(proxy.ln.Addr().String()), connectionString(addr)
	// What our blobs must hash to: the raw disk (hashed once, holes as
	// zeros without reading them) and then each blob's own footer.
	rawMD5 := md5.New()
	f, err := os.Open(raw)
	if err != nil {
		return "", err
	}
	_, err = sparse.HashFile(context.Background(), f, sparse.CopyOptions{Hashes: []io.Writer{rawMD5}})
	f.Close()
	if err != nil {
		return "", err
	}
	// The content MD5 the script passes, computed untimed; the timed script
	// runs md5sum itself as AlmaLinux's does.
	script := fmt.Sprintf(`set -e
sum=$(md5sum %[1]q | cut -d' ' -f1)
b64=$(printf %%s "$sum" | xxd -r -p | base64)
%[2]q storage blob upload --type page --content-md5 "$b64" -f %[1]q -c bench -n script.vhd --connection-string %[3]q --only-show-errors >/dev/null`, fixed, az, cs)
	// Every upload gets a fresh, empty Azurite (started and stopped
	// untimed): one instance for all would make later contenders pay for
	// the garbage of earlier ones (it keeps 4 GiB blobs in node's heap).
	// Its CPU time during the run is kept: it shares the machine's CPUs
	// with the contender.
	srv := &azurite{root: root, addr: addr}
	defer srv.stop()
	serverCPU := map[string]time.Duration{}
	fresh := func() error {
		proxy.sent.Store(0)
		return srv.reset()
	}
	done := func(name string, check func() error) error {
		d, err := srv.cpu()
		if err != nil {
			return err
		}
		serverCPU[name] = d
		return check()
	}
	var sentScript, sentOurs int64
	var scriptMD5, oursMD5 string
	const (
		nFloor  = "floor: MD5 of the whole 4 GiB blob alone (crypto/md5, holes as zeros)"
		nScript = "AlmaLinux's way: md5sum of the fixed VHD + az storage blob upload --type page --content-md5"
		nOurs   = "osimage-gallery upload (raw disk, padding and footer streamed)"
		nDirect = "osimage-gallery upload, straight to Azurite (no counting proxy)"
	)
	contenders := []contender{
		{name: nFloor, argv: []string{cfg.child, "md5", fixed}, ownPeak: true},
		{name: nScript, argv: []string{"bash", "-c", script}, prepare: fresh,
			cleanup: func() error {
				sentScript = proxy.sent.Load()
				return done(nScript, func() (err error) { scriptMD5, err = contentMD5(srv, "script.vhd"); return err })
			}},
		{name: nOurs, argv: []string{cfg.child, "upload", raw, cs, "bench", "ours.vhd"}, ownPeak: true, prepare: fresh,
			cleanup: func() error {
				sentOurs = proxy.sent.Load()
				return done(nOurs, func() (err error) { oursMD5, err = checkOurs(srv, "ours.vhd", rawMD5); return err })
			}},
		// The same upload without the counting proxy, which copies every
		// byte in this driver's process on the same CPUs: the user's path.
		{name: nDirect, argv: []string{cfg.child, "upload", raw, direct, "bench", "direct.vhd"}, ownPeak: true, prepare: fresh,
			cleanup: func() error {
				return done(nDirect, func() error { _, err := checkOurs(srv, "direct.vhd", rawMD5); return err })
			}},
	}
	res, err := compare(1, contenders)
	if err != nil {
		return "", err
	}
	for _, r := range res {
		fmt.Fprintf(os.Stderr, "bench: %s: %s, %s\n", r.name, fmtDur(r.median()), fmtMiB(r.peakRSS()))
	}
	fmt.Fprintf(os.Stderr, "bench: bytes sent: script %d, ours %d\n", sentScript, sentOurs)
	floor, script2, ours, oursDirect := res[0], res[1], res[2], res[3]
	data := int64(400 << 20)
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `make bench` (suite `upload`, one run each, as the issue asks: az takes about 40 s). Machine: %s. Azurite 3.35 in memory, a fresh instance for every upload (started, given its container and stopped untimed; before 2026-12-01 evening one instance served all, so later contenders found the earlier ones' blobs in node's heap); bytes are counted by a TCP proxy in front of it (request bytes, headers included); ours also runs once straight to Azurite, since the proxy copies every byte in this driver's process on the same 2 CPUs, and that run is the one held against the floor. The VHD for the script is made beforehand, untimed (AlmaLinux's qemu-img step is not counted against it); ours reads the raw disk and streams padding and footer. The floor and ours are bench/child processes that report their own peak memory and are not polled while they run; the script (bash, which az runs under) is polled every 2 ms.\n\n", machine())
	b.WriteString("| contender | wall | vs script | vs floor | bytes sent | peak memory | CPU time | Azurite's CPU time | both, per wall second |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	azCPU := func(name string) string {
		if d, ok := serverCPU[name]; ok {
			return fmtDur(d)
		}
		return "-"
	}
	for _, r := range []struct {
		r    result
		sent string
	}{{floor, "-"}, {script2, fmt.Sprintf("%.1f MiB", float64(sentScript)/(1<<20))}, {ours, fmt.Sprintf("%.1f MiB", float64(sentOurs)/(1<<20))}, {oursDirect, "(not counted)"}} {
		cpu := r.r.medianCPU()
		fmt.Fprintf(&b, "| %s | %s | %.2fx | %.2fx | %s | %s | %s | %s | %.2f |\n", r.r.name, fmtDur(r.r.median()), float64(script2.median())/float64(r.r.median()),
			float64(r.r.median())/float64(floor.median()), r.sent, fmtMiB(r.r.peakRSS()), fmtDur(cpu), azCPU(r.r.name), float64(cpu+serverCPU[r.r.name])/float64(r.r.median()))
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	speed := float64(script2.median()) / float64(ours.median())
	toFloor := float64(oursDirect.median()) / float64(floor.median())
	toFloorProxied := float64(ours.median()) / float64(floor.median())
	over := float64(sentOurs)/float64(data) - 1
	fmt.Fprintf(&b, "\nTargets: at least 4x faster than the script (both through the proxy): %.1fx, %s. Within 1.25x of the floor: %.2fx straight to Azurite, %s (%.2fx through the counting proxy). Bytes sent within 5 %% of the 400 MiB of data: %+.1f %%, %s. Memory under 256 MiB: %s, %s.\n",
		speed, check(speed >= 4), toFloor, check(toFloor <= 1.25), toFloorProxied, over*100, check(math.Abs(over) <= 0.05), fmtMiB(max(ours.peakRSS(), oursDirect.peakRSS())), check(max(ours.peakRSS(), oursDirect.peakRSS()) < 256<<20))
	fmt.Fprintf(&b, "\nCPU time is the contender's own (user + system, with the children it waited for: az under bash); Azurite's is read from /proc/PID/stat before and after the same run (10 ms ticks); the last column is how many of the machine's %d CPUs the two kept busy on average. The floor needs one CPU for its whole run, so ours can only come near it if the hasher keeps one CPU to itself while Azurite and the rest of the upload fit on the other.\n", runtime.NumCPU())
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "\nLoad average at the end of the run: %s. The script row's peak memory is bash's own (az runs as its grandchild and is not polled). On a shared 2-core machine Azurite (single-threaded node) competes for the same cores; when it is starved, the upload waits for Azurite's ingest rather than for hashing, which the floor does not need.\n", strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&b, "\nContent-MD5 of our blob: %s, checked against the MD5 of the raw disk, its padding and the footer read back from the blob; of the script's blob: %s.\n", oursMD5, scriptMD5)
	return b.String(), nil
}

// contentMD5 is the hex Content-MD5 of a blob.
func contentMD5(az *azurite, name string) (string, error) {
	tg, err := az.blob(name)
	if err != nil {
		return "", err
	}
	p, err := tg.Blob.GetProperties(context.Background(), nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return hex.EncodeToString(p.ContentMD5), nil
}

// checkOurs checks one of our blobs: it must hold the raw disk (whose MD5
// state is raw), its padding (none: 4 GiB is MiB-aligned) and a valid
// footer, and its Content-MD5 must be the MD5 of those bytes (footers
// differ in id and timestamp). It returns that MD5.
func checkOurs(az *azurite, name string, raw hash.Hash) (string, error) {
	tg, err := az.blob(name)
	if err != nil {
		return "", err
	}
	resp, err := tg.Blob.DownloadStream(context.Background(), &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 4 << 30, Count: vhd.FooterSize}})
	if err != nil {
		return "", fmt.Errorf("download the footer of %s: %w", name, err)
	}
	fb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if ft, err := vhd.Decode(fb); err != nil || ft.CurrentSize != 4<<30 {
		return "", fmt.Errorf("the footer of %s: %+v %v", name, ft, err)
	}
	h, err := raw.(hash.Cloner).Clone()
	if err != nil {
		return "", err
	}
	h.Write(fb)
	want := hex.EncodeToString(h.Sum(nil))
	got, err := contentMD5(az, name)
	if err != nil {
		return "", err
	}
	if got != want {
		return "", fmt.Errorf("%s: Content-MD5 %s, want %s (the raw disk and its footer)", name, got, want)
	}
	return got, nil
}
