package disk

// The qemu {} phase: stepQEMU boots the disk (and runs boot_check), the
// SDK's StepConnect, StepProvision and StepCleanupTempKeys run the
// provisioners when a communicator is set, and stepQEMUShutdown powers the
// guest off. internal/qemu does the QEMU work; these steps only wire it to
// Packer's state and UI.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	"github.com/hashicorp/packer-plugin-sdk/net"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/qemu"
)

// State bag keys of the qemu phase.
const (
	// stateVM is the running *qemu.VM, from stepQEMU.
	stateVM = "osimage.qemu_vm"
	// stateSSHPort is the loopback port forwarded to the guest's SSH port.
	stateSSHPort = "osimage.qemu_ssh_port"
)

// qemuSteps are the steps of the qemu {} phase for the disk at disk.
func (c *Config) qemuSteps(disk string) []multistep.Step {
	q := c.QEMU
	useComm := c.Comm.Type != "none"
	l := qemu.Launch{
		Binary: q.Binary, Arch: c.Arch, Machine: q.Machine, CPU: q.CPUModel, Memory: q.Memory, CPUs: q.CPUs,
		Disk: disk, Snapshot: !useComm,
		Kernel: q.Kernel, Initrd: q.Initrd, Append: q.Append, Extra: q.ExtraArgs,
		SerialLog: filepath.Join(c.OutputDirectory, "serial.log"),
	}
	s := &stepQEMU{launch: l, accel: q.Accelerator, firmware: c.Firmware, code: q.FirmwareCode, vars: q.FirmwareVars}
	if q.BootCheck != nil {
		s.expect, s.bootTimeout = q.bootRE, q.BootCheck.Timeout
	}
	var steps []multistep.Step
	if useComm {
		s.guestPort = c.Comm.Port()
	}
	if c.Comm.Type == "ssh" && c.Comm.SSHPassword == "" && !c.Comm.SSHAgentAuth {
		// A temporary key pair (or the public half of ssh_private_key_file)
		// that stepQEMU hands to the guest as root's authorized key.
		steps = append(steps, &communicator.StepSSHKeyGen{CommConf: &c.Comm, SSHTemporaryKeyPair: c.Comm.SSHTemporaryKeyPair})
		s.comm = &c.Comm
	}
	steps = append(steps, s)
	if useComm {
		steps = append(steps,
			&communicator.StepConnect{
				Config:    &c.Comm,
				Host:      func(multistep.StateBag) (string, error) { return "127.0.0.1", nil },
				SSHConfig: c.Comm.SSHConfigFunc(),
				SSHPort:   func(state multistep.StateBag) (int, error) { return state.Get(stateSSHPort).(int), nil },
			},
			&commonsteps.StepProvision{},
			&commonsteps.StepCleanupTempKeys{Comm: &c.Comm},
		)
	}
	return append(steps, &stepQEMUShutdown{command: q.ShutdownCommand, timeout: q.ShutdownTimeout, disk: disk, wrote: useComm})
}

// qemuPreflight is stepPreflight's check of the qemu phase: the emulator
// and the firmware exist, before anything is written.
type qemuPreflight struct {
	binary, arch, firmware, code, vars string
}

func (p *qemuPreflight) check() error {
	bin := p.binary
	if bin == "" {
		bin = qemu.BinaryFor(p.arch)
	}
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Errorf("qemu: %s not found: install the Debian/Ubuntu package %s or set qemu.binary", bin, qemu.DebianPackage(p.arch))
	}
	if _, err := qemu.FindFirmware("", p.arch, p.firmware, p.code, p.vars); err != nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// stepQEMU chooses the accelerator, finds the firmware (the build's own
// vars copy), takes a loopback port when a communicator will connect,
// starts QEMU on the disk with the serial console in serial.log, and runs
// boot_check. Cleanup kills QEMU if it still runs and releases the port.
type stepQEMU struct {
	launch               qemu.Launch // without accelerator, firmware, QMP socket and port
	accel                string
	firmware, code, vars string
	guestPort            int // 0: no communicator, no network
	// comm, when set, holds the SSH public key (from StepSSHKeyGen) given
	// to the guest as the systemd credential ssh.authorized_keys.root.
	comm             *communicator.Config
	expect           *regexp.Regexp
	bootTimeout      time.Duration
	prober           qemu.Prober // zero: the real /dev/kvm
	vm               *qemu.VM
	work             string
	port             *net.Listener
	minPort, maxPort int // default 2222-4444, as packer-plugin-qemu
}

func (s *stepQEMU) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	l := s.launch
	work, err := os.MkdirTemp("", "osimage-qemu-")
	if err != nil {
		return halt(state, fmt.Errorf("qemu: %w", err))
	}
	s.work = work
	choice, err := s.prober.Choose(ctx, s.accel, l.Arch, l.Binary, work)
	if err != nil {
		return halt(state, fmt.Errorf("qemu: %w", err))
	}
	ui.Sayf("QEMU accelerator: %s", choice.Reason)
	l.Accel = choice.Accel
	fw, err := qemu.FindFirmware("", l.Arch, s.firmware, s.code, s.vars)
	if err == nil {
		fw, err = fw.CopyVars(work)
	}
	if err != nil {
		return halt(state, fmt.Errorf("qemu: %w", err))
	}
	l.Firmware = fw
	l.QMPSocket = filepath.Join(work, "qmp.sock")
	if s.guestPort > 0 {
		lo, hi := s.minPort, s.maxPort
		if lo == 0 {
			lo, hi = 2222, 4444
		}
		p, err := net.ListenRangeConfig{Network: "tcp", Addr: "127.0.0.1", Min: lo, Max: hi}.Listen(ctx)
		if err != nil {
			return halt(state, fmt.Errorf("qemu: no free loopback port in %d-%d: %w", lo, hi, err))
		}
		p.Listener.Close() // free the port for QEMU; the lock stays until Cleanup
		s.port = p
		l.SSHHostPort, l.GuestPort = p.Port, s.guestPort
		state.Put(stateSSHPort, p.Port)
		ui.Sayf("Guest port %d is forwarded from 127.0.0.1:%d", s.guestPort, p.Port)
	}
	if s.comm != nil && len(s.comm.SSHPublicKey) > 0 {
		l.Credentials = append(l.Credentials, qemu.Credential{Name: "ssh.authorized_keys.root", Value: strings.TrimSpace(string(s.comm.SSHPublicKey))})
		ui.Say("The SSH public key goes to the guest as the systemd credential ssh.authorized_keys.root (SMBIOS type 11)")
	}
	getOutputs(state).add(artifact.File{Path: l.SerialLog, Role: artifact.RoleLog})
	argv, _ := l.Args()
	ui.Sayf("Starting QEMU (%s, %s firmware); serial console in %s", l.Accel, fw.Kind, l.SerialLog)
	ui.Message(fmt.Sprintf("%q", argv))
	vm, err := qemu.Start(ctx, l)
	if err != nil {
		return halt(state, fmt.Errorf("qemu: %w", err))
	}
	s.vm = vm
	state.Put(stateVM, vm)
	if s.expect != nil {
		ui.Sayf("boot_check: waiting up to %v for %q on the serial console", s.bootTimeout, s.expect)
		t0 := time.Now()
		if err := vm.WaitFor(ctx, s.expect, s.bootTimeout); err != nil {
			return halt(state, err)
		}
		ui.Sayf("boot_check passed: %q seen after %v", s.expect, time.Since(t0).Round(time.Second/10))
	}
	return multistep.ActionContinue
}

func (s *stepQEMU) Cleanup(state multistep.StateBag) {
	if s.vm != nil {
		s.vm.Kill()
		// A later step failed (SSH never answered, a provisioner failed):
		// show the console's end too, as the qemu package's errors do.
		var qe *qemu.Error
		if err, ok := state.Get("error").(error); ok && !errors.As(err, &qe) {
			if tail := s.vm.Tail(qemu.TailLines); len(tail) > 0 {
				state.Get("ui").(packersdk.Ui).Say(fmt.Sprintf("last %d lines of the serial console (%s):\n%s",
					len(tail), s.vm.Launch.SerialLog, strings.Join(tail, "\n")))
			}
		}
	}
	if s.port != nil {
		s.port.Close()
	}
	if s.work != "" {
		os.RemoveAll(s.work)
	}
}

// stepQEMUShutdown powers the guest off: shutdown_command over the
// communicator when set, else ACPI power-off through QMP; QEMU is killed
// when it has not exited within the timeout. When the guest wrote the disk
// (a communicator ran provisioners), it marks the disk changed so the boot
// files are extracted again and its checksum is taken again.
type stepQEMUShutdown struct {
	command string
	timeout time.Duration
	disk    string
	wrote   bool
}

func (s *stepQEMUShutdown) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	vm := state.Get(stateVM).(*qemu.VM)
	var err error
	if comm, ok := state.Get("communicator").(packersdk.Communicator); ok && s.command != "" {
		ui.Sayf("Shutting the guest down with %q", s.command)
		cmd := &packersdk.RemoteCmd{Command: s.command}
		if cerr := comm.Start(ctx, cmd); cerr != nil {
			vm.Kill()
			return halt(state, fmt.Errorf("qemu.shutdown_command: %w", cerr))
		}
		if err = vm.Wait(ctx, s.timeout); err != nil {
			vm.Kill()
		}
	} else {
		ui.Say("Powering the guest off (ACPI, through QMP)")
		err = vm.Shutdown(ctx, s.timeout)
	}
	if s.wrote {
		state.Put(StateDiskChanged, true)
		getOutputs(state).changed(s.disk)
	}
	if err != nil {
		var qe *qemu.Error
		if !s.wrote && errors.As(err, &qe) && errors.Is(err, qemu.ErrTimeout) {
			// A boot check ran on a snapshot: killing QEMU loses nothing.
			ui.Sayf("The guest did not power off within %v; QEMU was killed (the disk was not written: boot_check runs on a snapshot)", s.timeout)
			return multistep.ActionContinue
		}
		if errors.Is(err, qemu.ErrExited) {
			// QEMU ended by itself, with an error status.
			if s.wrote {
				return halt(state, fmt.Errorf("qemu: the disk may be incomplete: %w", err))
			}
			return halt(state, fmt.Errorf("qemu: %w", err))
		}
		return halt(state, fmt.Errorf("qemu: the guest did not power off, the disk may be incomplete: %w", err))
	}
	ui.Say("QEMU exited")
	return multistep.ActionContinue
}

func (s *stepQEMUShutdown) Cleanup(multistep.StateBag) {}
