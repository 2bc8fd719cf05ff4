package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

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

// startAzurite runs Azurite in memory in its own process group.
func startAzurite(root string) (addr string, stop func(), err error) {
	bin := filepath.Join(root, ".tools/azurite/node_modules/.bin/azurite-blob")
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", "0", "--skipApiVersionCheck", "--disableTelemetry", "--inMemoryPersistence", "--loose")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("azurite (make tools): %w", err)
	}
	stop = func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }
	re := regexp.MustCompile(`listens on http://(127\.0\.0\.1:\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case addr = <-found:
		return addr, stop, nil
	case <-time.After(60 * time.Second):
		stop()
		return "", nil, fmt.Errorf("azurite did not start")
	}
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
	addr, stop, err := startAzurite(root)
	if err != nil {
		return "", err
	}
	defer stop()
	proxy, err := startProxy(addr)
	if err != nil {
		return "", err
	}
	defer proxy.ln.Close()
	cs := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://%s/devstoreaccount1;", devKey, proxy.ln.Addr())
	direct := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://%s/devstoreaccount1;", devKey, addr)
	if out, err := exec.Command(az, "storage", "container", "create", "-n", "bench", "--connection-string", cs).CombinedOutput(); err != nil {
		return "", fmt.Errorf("az storage container create: %v: %s", err, out)
	}
	// The content MD5 the script passes, computed untimed; the timed script
	// runs md5sum itself as AlmaLinux's does.
	script := fmt.Sprintf(`set -e
sum=$(md5sum %[1]q | cut -d' ' -f1)
b64=$(printf %%s "$sum" | xxd -r -p | base64)
%[2]q storage blob upload --type page --content-md5 "$b64" -f %[1]q -c bench -n script.vhd --connection-string %[3]q --only-show-errors >/dev/null`, fixed, az, cs)
	var sentScript, sentOurs int64
	contenders := []contender{
		{name: "floor: MD5 of the whole 4 GiB blob alone (crypto/md5, holes as zeros)", argv: []string{cfg.child, "md5", fixed}, ownPeak: true},
		{name: "AlmaLinux's way: md5sum of the fixed VHD + az storage blob upload --type page --content-md5", argv: []string{"bash", "-c", script},
			prepare: func() error { proxy.sent.Store(0); return nil }, cleanup: func() error { sentScript = proxy.sent.Load(); return nil }},
		{name: "osimage-gallery upload (raw disk, padding and footer streamed)", argv: []string{cfg.child, "upload", raw, cs, "bench", "ours.vhd"},
			prepare: func() error { proxy.sent.Store(0); return nil }, cleanup: func() error { sentOurs = proxy.sent.Load(); return nil }, ownPeak: true},
		// The same upload without the counting proxy, which copies every
		// byte in this driver's process on the same CPUs: the user's path.
		{name: "osimage-gallery upload, straight to Azurite (no counting proxy)", argv: []string{cfg.child, "upload", raw, direct, "bench", "direct.vhd"}, ownPeak: true},
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
	show := func(name string) (string, error) {
		out, err := exec.Command(az, "storage", "blob", "show", "-c", "bench", "-n", name, "--connection-string", cs, "--query", "properties.contentSettings.contentMd5", "-o", "tsv").Output()
		if err != nil {
			return "", err
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(out)))
		return fmt.Sprintf("%x", b), err
	}
	// Our blob must hold the raw disk, its padding and a valid footer, and
	// its Content-MD5 must be the MD5 of those bytes (the footer's id and
	// timestamp differ from the script's VHD, so the sums differ).
	oursMD5, err := show("ours.vhd")
	if err != nil {
		return "", err
	}
	footer := filepath.Join(dir, "footer")
	defer os.Remove(footer)
	if out, err := exec.Command(az, "storage", "blob", "download", "-c", "bench", "-n", "ours.vhd", "-f", footer, "--start-range", fmt.Sprint(4<<30), "--end-range", fmt.Sprint(4<<30+511), "--connection-string", cs, "--only-show-errors").CombinedOutput(); err != nil {
		return "", fmt.Errorf("download our footer: %v: %s", err, out)
	}
	fb, err := os.ReadFile(footer)
	if err != nil {
		return "", err
	}
	if ft, err := vhd.Decode(fb); err != nil || ft.CurrentSize != 4<<30 {
		return "", fmt.Errorf("our blob's footer: %+v %v", ft, err)
	}
	sum := md5.New()
	f, _ := os.Open(raw)
	io.Copy(sum, f)
	f.Close()
	sum.Write(fb)
	if want := fmt.Sprintf("%x", sum.Sum(nil)); oursMD5 != want {
		return "", fmt.Errorf("our blob's Content-MD5 %s, want %s", oursMD5, want)
	}
	scriptMD5, _ := show("script.vhd")
	data := int64(400 << 20)
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `make bench` (suite `upload`, one run each, as the issue asks: az takes about 40 s). Machine: %s. Azurite 3.35 in memory, same instance for all; bytes are counted by a TCP proxy in front of it (request bytes, headers included); ours also runs once straight to Azurite, since the proxy copies every byte in this driver's process on the same 2 CPUs, and that run is the one held against the floor. The VHD for the script is made beforehand, untimed (AlmaLinux's qemu-img step is not counted against it); ours reads the raw disk and streams padding and footer. The floor and ours are bench/child processes that report their own peak memory and are not polled while they run; the script (bash, which az runs under) is polled every 2 ms.\n\n", machine())
	b.WriteString("| contender | wall | vs script | vs floor | bytes sent | peak memory |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range []struct {
		r    result
		sent string
	}{{floor, "-"}, {script2, fmt.Sprintf("%.1f MiB", float64(sentScript)/(1<<20))}, {ours, fmt.Sprintf("%.1f MiB", float64(sentOurs)/(1<<20))}, {oursDirect, "(not counted)"}} {
		fmt.Fprintf(&b, "| %s | %s | %.2fx | %.2fx | %s | %s |\n", r.r.name, fmtDur(r.r.median()), float64(script2.median())/float64(r.r.median()),
			float64(r.r.median())/float64(floor.median()), r.sent, fmtMiB(r.r.peakRSS()))
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
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "\nLoad average at the end of the run: %s. The script row's peak memory is bash's own (az runs as its grandchild and is not polled). On a shared 2-core machine Azurite (single-threaded node) competes for the same cores; when it is starved, the upload waits for Azurite's ingest rather than for hashing, which the floor does not need.\n", strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&b, "\nContent-MD5 of our blob: %s, checked against the MD5 of the raw disk, its padding and the footer read back from the blob; of the script's blob: %s.\n", oursMD5, scriptMD5)
	return b.String(), nil
}
