package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func init() {
	register(suite{name: "oci", title: "osimage-oci: push 4 manifests (two 1 GiB rootfs, two kernels, two initramfs) to a local registry", run: benchOCI})
	registerChild("seq", runSeq)
}

// ociFiles writes (once) the suite's files: incompressible random data, and
// each file's sha256 next to it, as the disk builder records it.
func ociFiles(dir string) error {
	sizes := map[string]int64{"rootfs": 1 << 30, "kernel": 12 << 20, "initramfs": 48 << 20}
	rng := rand.New(rand.NewSource(7))
	buf := make([]byte, 4<<20)
	for _, arch := range []string{"amd64", "arm64"} {
		for kind, size := range sizes {
			p := filepath.Join(dir, kind+"-"+arch)
			if st, err := os.Stat(p + ".sha256"); err == nil && st.Size() > 0 {
				continue
			}
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			for n := int64(0); n < size; n += int64(len(buf)) {
				rng.Read(buf)
				f.Write(buf)
				h.Write(buf)
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.WriteFile(p+".sha256", []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// registry runs the distribution registry on a fixed loopback port behind
// a TCP proxy that counts the bytes clients send. Reset wipes its storage
// and restarts it, so every run starts from an empty registry.
type registry struct {
	bin, dir, cfg string
	addr, proxy   string
	cmd           *exec.Cmd
	sent          atomic.Int64
}

func (r *registry) start() error {
	r.cmd = exec.Command(r.bin, "serve", r.cfg)
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	for i := 0; i < 300; i++ {
		if resp, err := http.Get("http://" + r.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("registry did not start on %s", r.addr)
}

func (r *registry) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		r.cmd = nil
	}
}

func (r *registry) reset() error {
	r.stop()
	if err := os.RemoveAll(filepath.Join(r.dir, "data")); err != nil {
		return err
	}
	r.sent.Store(0)
	return r.start()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (r *registry) serveProxy() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.proxy = l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", r.addr)
				if err != nil {
					return
				}
				defer u.Close()
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					io.Copy(u, countingReader{c, &r.sent})
					u.(*net.TCPConn).CloseWrite()
				}()
				io.Copy(c, u)
				wg.Wait()
			}()
		}
	}()
	return nil
}

func benchOCI(cfg config) (string, error) {
	root, _ := filepath.Abs(".")
	bin := filepath.Join(root, ".tools", "bin")
	oras := filepath.Join(bin, "oras")
	for _, p := range []string{oras, filepath.Join(bin, "registry")} {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w (run make tools)", p, err)
		}
	}
	dir, _ := filepath.Abs(filepath.Join(cfg.work, "oci"))
	files := filepath.Join(dir, "files")
	os.MkdirAll(files, 0o755)
	if err := ociFiles(files); err != nil {
		return "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	r := &registry{bin: filepath.Join(bin, "registry"), dir: dir, addr: addr, cfg: filepath.Join(dir, "config.yml")}
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(r.cfg, []byte(conf), 0o644); err != nil {
		return "", err
	}
	if err := r.serveProxy(); err != nil {
		return "", err
	}
	defer r.stop()
	repo := r.proxy + "/bench/os"

	// oras: one push per manifest, as a user would script it (oras v1.2.0
	// has no index command; ours writes the indexes and per-arch tags too).
	cfgFile := filepath.Join(files, "config.json")
	os.WriteFile(cfgFile, []byte(`{"commandLine":"console=ttyS0"}`), 0o644)
	var seq []string
	for _, arch := range []string{"amd64", "arm64"} {
		push := func(tag string, layers ...string) {
			seq = append(seq, oras, "push", "--plain-http", "--disable-path-validation", repo+":"+tag,
				"--config", cfgFile+":application/vnd.ironcore.image.config.v1+json")
			seq = append(seq, layers...)
			seq = append(seq, "--")
		}
		rootfs := filepath.Join(files, "rootfs-"+arch) + ":application/vnd.ironcore.image.rootfs"
		push("1.0-virtualization-"+arch, rootfs)
		push("1.0-baremetal-"+arch, filepath.Join(files, "kernel-"+arch)+":application/vnd.ironcore.image.kernel",
			filepath.Join(files, "initramfs-"+arch)+":application/vnd.ironcore.image.initramfs", rootfs)
	}
	sent := map[string][]int64{}
	mk := func(name string, argv []string) contender {
		return contender{name: name, argv: argv, prepare: r.reset, cleanup: func() error {
			sent[name] = append(sent[name], r.sent.Load())
			return nil
		}}
	}
	cs := []contender{
		mk("oras push (v1.2.0), 4 manifests", append([]string{cfg.self, "child", "seq"}, seq...)),
		mk("osimage-oci, compression none", []string{cfg.child, "oci-push", repo, files, "none"}),
		mk("osimage-oci, compression zstd", []string{cfg.child, "oci-push", repo, files, "zstd"}),
		mk("floor: the 6 blobs once each, monolithic POST+PUT, 4 at a time, no manifests", []string{cfg.child, "oci-floor", "http://" + r.proxy, "bench/floor", files}),
	}
	res, err := compare(cfg.n, cs)
	if err != nil {
		return "", err
	}
	o := res[0].median()
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `make bench` (suite `oci`: `scripts/bench.sh oci`, %d runs each; each run starts from an empty distribution v3.1.2 registry on loopback). Machine: %s.\n\n", cfg.n, machine())
	b.WriteString("Files: rootfs 2 x 1 GiB, kernel 2 x 12 MiB, initramfs 2 x 48 MiB (incompressible); 4 manifests: virtualization (rootfs) and baremetal (kernel, initramfs, rootfs) for amd64 and arm64, so each rootfs is in two manifests.\n\n")
	b.WriteString("| contender | median wall | speed vs oras | bytes sent to the registry | peak memory |\n|---|---:|---:|---:|---:|\n")
	for _, x := range res {
		s := sent[x.name]
		fmt.Fprintf(&b, "| %s | %s | %.2fx | %s | %s |\n", x.name, fmtDur(x.median()), float64(o)/float64(x.median()), fmtMiB(medianInt(s)), fmtMiB(x.peakRSS()))
	}
	none := res[1]
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	fmt.Fprintf(&b, "\nTargets: at least 1.5x faster than oras uncompressed: %.2fx, %s. Peak memory under 128 MiB: %s, %s.\n",
		float64(o)/float64(none.median()), check(float64(o)/float64(none.median()) >= 1.5), fmtMiB(max(none.peakRSS(), res[2].peakRSS())), check(max(none.peakRSS(), res[2].peakRSS()) < 128<<20))
	floor := res[3].median()
	fmt.Fprintf(&b, "\nThe floor row is the least any client must do against this registry: send each distinct blob once, with its digest known. Ours takes %.2fx the floor's time and oras %.2fx; the fastest client possible would be %.2fx faster than oras here.\n",
		float64(none.median())/float64(floor), float64(o)/float64(floor), float64(o)/float64(floor))
	fmt.Fprintf(&b, "\nLoad average when the runs ended: %s (other jobs on the machine compete for its %d CPUs with the registry and the clients).\n", loadAvg(), numCPU())
	b.WriteString("\nBytes sent are counted on the wire by a TCP proxy in front of the registry (request bodies and headers). Both skip blobs the registry has (HEAD), so each rootfs goes once. The difference in time: oras hashes every file before it pushes (each rootfs twice, once per manifest), ours takes the sha256 the disk builder recorded and reads each blob once (sent with sendfile), uploading 4 at a time; both wait mostly on the registry, which hashes and stores every byte it receives, so the machine's other load weighs on both. zstd compresses the random data in parallel on every core (it cannot shrink it); on 2 shared cores it costs more than it saves.\n")
	return b.String(), nil
}

// countingReader adds what it reads to n as it goes, so the count is
// complete when the client process ends.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func medianInt(v []int64) int64 {
	ds := make([]time.Duration, len(v))
	for i, x := range v {
		ds[i] = time.Duration(x)
	}
	if len(ds) == 0 {
		return 0
	}
	return int64(median(ds))
}

// runSeq runs commands separated by "--" one after the other, and prints
// the largest peak resident memory among them.
func runSeq(args []string) error {
	var hwm int64
	for len(args) > 0 {
		i := 0
		for i < len(args) && args[i] != "--" {
			i++
		}
		argv := args[:i]
		if i < len(args) {
			args = args[i+1:]
		} else {
			args = nil
		}
		if len(argv) == 0 {
			continue
		}
		s, err := runOnce(argv, true)
		if err != nil {
			return err
		}
		hwm = max(hwm, s.maxRSS)
	}
	fmt.Printf("hwm-bytes: %d\n", hwm)
	return nil
}
