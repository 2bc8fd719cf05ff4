package qemu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChooseTakesAnExplicitAcceleratorAsAsked(t *testing.T) {
	p := Prober{Device: "/nonexistent/kvm"}
	for _, want := range []string{AccelKVM, AccelTCG} {
		c, err := p.Choose(context.Background(), want, ArchX86_64, "", t.TempDir())
		if err != nil || c.Accel != want || !strings.Contains(c.Reason, "accelerator = "+want) {
			t.Errorf("%s: got %+v %v", want, c, err)
		}
	}
	if _, err := p.Choose(context.Background(), "hvf", ArchX86_64, "", t.TempDir()); err == nil || !strings.Contains(err.Error(), `"hvf"`) {
		t.Errorf("an unknown accelerator is refused by name, got %v", err)
	}
}

func TestAutoTakesTCGForAnotherArchitecture(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm")
	os.WriteFile(dev, nil, 0o600) // opens fine: the arch alone decides
	for _, tt := range []struct{ host, guest string }{{ArchX86_64, ArchAarch64}, {ArchAarch64, ArchX86_64}} {
		c, err := Prober{Device: dev, HostArch: tt.host}.Choose(context.Background(), AccelAuto, tt.guest, "", t.TempDir())
		if err != nil || c.Accel != AccelTCG || !strings.Contains(c.Reason, tt.guest) || !strings.Contains(c.Reason, tt.host) {
			t.Errorf("%+v: got %+v %v", tt, c, err)
		}
	}
}

func TestAutoTakesTCGWithoutAKVMDevice(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm")
	for _, want := range []string{AccelAuto, ""} {
		c, err := Prober{Device: dev, HostArch: ArchX86_64}.Choose(context.Background(), want, ArchX86_64, "", t.TempDir())
		if err != nil || c.Accel != AccelTCG || !strings.Contains(c.Reason, dev) {
			t.Errorf("%q: got %+v %v", want, c, err)
		}
	}
	// A device that exists but cannot be opened read-write counts as absent.
	ro := filepath.Join(t.TempDir(), "kvm")
	os.WriteFile(ro, nil, 0o400)
	os.Chmod(filepath.Dir(ro), 0o500)
	defer os.Chmod(filepath.Dir(ro), 0o700)
	if os.Getuid() != 0 {
		c, _ := Prober{Device: ro, HostArch: ArchX86_64}.Choose(context.Background(), AccelAuto, ArchX86_64, "", t.TempDir())
		if c.Accel != AccelTCG {
			t.Errorf("unopenable device: got %+v", c)
		}
	}
}

// A device node that opens but is no KVM (a plain file here) stands for a
// KVM that lies: the probe boots under kvm, QEMU refuses or hangs, and auto
// must fall back to TCG saying why.
func TestAutoTakesTCGWhenKVMOpensButCannotBootAGuest(t *testing.T) {
	needQEMU(t, ArchX86_64)
	dev := filepath.Join(t.TempDir(), "kvm")
	os.WriteFile(dev, nil, 0o600)
	work := t.TempDir()
	p := Prober{Device: dev, HostArch: ArchX86_64, Timeout: time.Minute}
	c, err := p.Choose(context.Background(), AccelAuto, ArchX86_64, "", work)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/kvm"); err == nil {
		// QEMU itself opens the real /dev/kvm: the verdict is this host's.
		t.Logf("this host has /dev/kvm: the probe's verdict is %+v", c)
		return
	}
	if c.Accel != AccelTCG || !strings.Contains(c.Reason, "did not boot under KVM") || !strings.Contains(c.Reason, dev) {
		t.Fatalf("got %+v", c)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Fatalf("the probe left files behind: %v", ents)
	}
}

// The probe's own path, shown working by booting its payloads with TCG in
// place of KVM: the marker arrives and the verdict is cached.
func TestProbeBootsItsPayloadAndCachesTheVerdict(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm")
	os.WriteFile(dev, nil, 0o600)
	for _, arch := range []string{ArchX86_64, ArchAarch64} {
		t.Run(arch, func(t *testing.T) {
			needQEMU(t, arch)
			p := Prober{Device: dev, HostArch: arch, Accel: AccelTCG, Timeout: 2 * time.Minute}
			c, err := p.Choose(context.Background(), AccelAuto, arch, "", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if c.Accel != AccelKVM || !strings.Contains(c.Reason, "booted") {
				t.Fatalf("a payload that boots makes auto take kvm; got %+v", c)
			}
			again, err := p.Choose(context.Background(), AccelAuto, arch, "", filepath.Join(t.TempDir(), "not", "there"))
			if err != nil || again != c {
				t.Fatalf("second choice should come from the cache (no new probe, same words): %+v %v", again, err)
			}
		})
	}
}

func TestProbeTimesOutOnAGuestThatNeverPrints(t *testing.T) {
	needQEMU(t, ArchX86_64)
	dir := t.TempDir()
	dev := filepath.Join(dir, "kvm-hangs")
	os.WriteFile(dev, nil, 0o600)
	saved := x86Payload
	x86Payload = make([]byte, 1024) // boots nothing, prints nothing
	defer func() { x86Payload = saved }()
	p := Prober{Device: dev, HostArch: ArchX86_64, Accel: AccelTCG, Timeout: 3 * time.Second}
	c, err := p.Choose(context.Background(), AccelAuto, ArchX86_64, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Accel != AccelTCG || !strings.Contains(c.Reason, "timed out") {
		t.Fatalf("a probe guest that hangs means TCG; got %+v", c)
	}
}

func TestProbeFailsOnAMissingEmulator(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm")
	os.WriteFile(dev, nil, 0o600)
	c, err := Prober{Device: dev, HostArch: ArchX86_64}.Choose(context.Background(), AccelAuto, ArchX86_64, "qemu-system-none", t.TempDir())
	if err != nil || c.Accel != AccelTCG || !strings.Contains(c.Reason, "qemu-system-none") {
		t.Fatalf("got %+v %v", c, err)
	}
}

func TestChooseReturnsTheContextsErrorWhenCancelled(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm-cancel")
	os.WriteFile(dev, nil, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := Prober{Device: dev, HostArch: ArchX86_64, Accel: AccelTCG, Timeout: 2 * time.Minute}
	if _, err := p.Choose(ctx, AccelAuto, ArchX86_64, "", t.TempDir()); err != context.Canceled {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	needQEMU(t, ArchX86_64)
	c, err := p.Choose(context.Background(), AccelAuto, ArchX86_64, "", t.TempDir())
	if err != nil || c.Accel != AccelKVM {
		t.Fatalf("a cancelled probe is not cached: the next build probes again; got %+v %v", c, err)
	}
}

func TestPayloadsAreWhatTheirSourcesSay(t *testing.T) {
	if len(x86Payload) != 1024 || !bytes.Equal(x86Payload[510:512], []byte{0x55, 0xaa}) ||
		!bytes.Contains(x86Payload, []byte(probeMarker)) {
		t.Fatal("x86 payload: two sectors, boot signature, marker")
	}
	a := aarch64Payload()
	if len(a) != 4*len(aarch64Listing)+len("\n"+probeMarker+"\n")+1 || a[0] != 0x00 || a[3] != 0xD2 ||
		!bytes.HasSuffix(a, []byte(probeMarker+"\n\x00")) {
		t.Fatalf("aarch64 payload layout: % x", a[:8])
	}
	if _, err := exec.LookPath("as"); err != nil {
		return // binutils is only needed to rebuild the x86 payload
	}
	out := t.TempDir()
	obj := filepath.Join(out, "p.o")
	bin := filepath.Join(out, "p.bin")
	for _, args := range [][]string{
		{"as", "--64", "-o", obj, "payload/x86_64.S"},
		{"ld", "-m", "elf_x86_64", "-Ttext=0x7c00", "--oformat", "binary", "-o", bin, obj},
	} {
		if b, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, b)
		}
	}
	if got, _ := os.ReadFile(bin); !bytes.Equal(got, x86Payload) {
		t.Fatal("payload/x86_64.bin is stale: run payload/build.sh")
	}
}

func TestFirstLine(t *testing.T) {
	for in, want := range map[string]string{"": "qemu printed nothing", "a\nb": "a", "one": "one"} {
		if got := firstLine(in); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
}
