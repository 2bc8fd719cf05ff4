package qemu

// Design choice: KVM is trusted only after it booted a guest. Opening
// /dev/kvm proves nothing (on some hosts it opens and creates VMs, yet a
// guest hangs), so auto boots a tiny payload under KVM with a deadline and
// takes TCG unless the payload's marker reaches the serial console.

import (
	"context"
	_ "embed"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// probeMarker is what both payloads print on their serial console.
const probeMarker = "OSIMAGE-ACCEL-OK"

// x86Payload is a 1 KiB boot disk (payload/x86_64.S): real mode, a BIOS
// disk read, protected mode, long mode, then the marker on COM1.
//
//go:embed payload/x86_64.bin
var x86Payload []byte

// aarch64Listing is the aarch64 payload, loaded as a raw kernel at the
// start of RAM on the virt machine: it writes the marker to the PL011 UART
// at 0x09000000 and waits for interrupts forever.
var aarch64Listing = []uint32{
	0xD2A12000, // movz x0, #0x0900, lsl #16   UART base 0x09000000
	0x100000E1, // adr  x1, msg                (+28)
	0x38401422, // loop: ldrb w2, [x1], #1
	0x34000062, //       cbz  w2, done         (+12)
	0x39000002, //       strb w2, [x0]
	0x17FFFFFD, //       b    loop             (-12)
	0xD503207F, // done: wfi
	0x17FFFFFF, //       b    done
}

// aarch64Payload is the assembled listing followed by the message.
func aarch64Payload() []byte {
	b := make([]byte, 0, 4*len(aarch64Listing)+32)
	for _, w := range aarch64Listing {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return append(append(b, "\n"+probeMarker+"\n"...), 0)
}

// Choice is the accelerator to use and why, in words for the UI.
type Choice struct {
	Accel  string
	Reason string
}

// Prober decides what accelerator "auto" means on this host.
type Prober struct {
	Device   string        // default /dev/kvm
	HostArch string        // default HostArch()
	Timeout  time.Duration // how long the test guest may take, default 20s
	// Accel is what the probe boots with; only tests change it (to tcg,
	// to show a working probe on a machine without KVM).
	Accel string
}

// probeResult is one cached verdict; mu makes parallel builds wait for
// the first probe instead of starting their own.
type probeResult struct {
	mu     sync.Mutex
	done   bool
	ok     bool
	reason string
}

var (
	probeMu    sync.Mutex
	probeCache = map[string]*probeResult{}
)

// Choose resolves want (kvm, tcg or auto; "" is auto) for a guest of arch
// run by binary ("" for the default emulator). kvm and tcg are taken as
// asked. auto is kvm only when the guest arch is the host's and a test
// guest booted under KVM (once per process per device and binary), and tcg
// otherwise. workDir holds the probe's files while it runs.
func (p Prober) Choose(ctx context.Context, want, arch, binary, workDir string) (Choice, error) {
	switch want {
	case AccelKVM:
		return Choice{AccelKVM, "accelerator = kvm was set"}, nil
	case AccelTCG:
		return Choice{AccelTCG, "accelerator = tcg was set"}, nil
	case AccelAuto, "":
	default:
		return Choice{}, fmt.Errorf("accelerator %q: expected %s, %s or %s", want, AccelAuto, AccelKVM, AccelTCG)
	}
	host := or(p.HostArch, HostArch())
	if arch != host {
		return Choice{AccelTCG, fmt.Sprintf("TCG: the guest is %s and this host is %s, so KVM cannot run it", arch, host)}, nil
	}
	dev := or(p.Device, "/dev/kvm")
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return Choice{AccelTCG, fmt.Sprintf("TCG: KVM is not usable here (%v)", err)}, nil
	}
	f.Close()
	binary = or(binary, BinaryFor(arch))
	key := dev + "\x00" + binary + "\x00" + arch + "\x00" + p.Accel
	probeMu.Lock()
	r, ok := probeCache[key]
	if !ok {
		r = &probeResult{}
		probeCache[key] = r
	}
	probeMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		t0 := time.Now()
		err := p.probe(ctx, arch, binary, workDir)
		if ctx.Err() != nil { // a cancelled probe proves nothing: not cached
			return Choice{}, ctx.Err()
		}
		r.done = true
		if err != nil {
			r.reason = fmt.Sprintf("TCG: %s opens, but a test guest did not boot under KVM: %v", dev, err)
		} else {
			r.ok = true
			r.reason = fmt.Sprintf("KVM: a test guest booted under KVM in %v", time.Since(t0).Round(time.Millisecond))
		}
	}
	if r.ok {
		return Choice{AccelKVM, r.reason}, nil
	}
	return Choice{AccelTCG, r.reason}, nil
}

// probe boots the payload for arch with p.Accel (default kvm) and waits for
// its marker.
func (p Prober) probe(ctx context.Context, arch, binary, workDir string) error {
	dir, err := os.MkdirTemp(workDir, "accel-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	accel := or(p.Accel, AccelKVM)
	l := Launch{Binary: binary, Arch: arch, Accel: accel, Memory: 128, CPUs: 1,
		SerialLog: filepath.Join(dir, "serial.log"), QMPSocket: filepath.Join(dir, "qmp.sock")}
	payload := filepath.Join(dir, "payload.raw")
	if arch == ArchAarch64 {
		err = os.WriteFile(payload, aarch64Payload(), 0o644)
		l.Kernel = payload
	} else {
		err = writeBootDisk(payload, x86Payload)
		l.Disk = payload
	}
	if err != nil {
		return err
	}
	vm, err := Start(ctx, l)
	if err != nil {
		return err
	}
	defer vm.Kill()
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	if err := vm.WaitFor(ctx, regexp.MustCompile(probeMarker), timeout); err != nil {
		if e, ok := err.(*Error); ok {
			return fmt.Errorf("%w (%s)", e.Err, firstLine(e.Stderr))
		}
		return err
	}
	return nil
}

// writeBootDisk writes the boot sectors into a 1 MiB sparse disk (SeaBIOS
// does not boot a disk smaller than that).
func writeBootDisk(path string, sectors []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(sectors)
	if err == nil {
		err = f.Truncate(1 << 20)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	if s == "" {
		return "qemu printed nothing"
	}
	return s
}
