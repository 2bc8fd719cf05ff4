package disk

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/communicator"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"

	"github.com/osimage/packer-plugin-osimage/internal/qemu"
)

func withQEMU(t *testing.T, q map[string]interface{}, extra map[string]interface{}) map[string]interface{} {
	raw := map[string]interface{}{"source_image": someFile(t), "arch": "x86_64", "qemu": q}
	for k, v := range extra {
		raw[k] = v
	}
	return raw
}

func TestPrepareQEMUBlockDefaults(t *testing.T) {
	c := mustPrepare(t, withQEMU(t, map[string]interface{}{"boot_check": map[string]interface{}{"expect": "login:"}}, nil))
	q := c.QEMU
	if q.Accelerator != qemu.AccelAuto || q.ShutdownTimeout != 5*time.Minute || q.BootCheck.Timeout != 5*time.Minute ||
		q.bootRE.String() != "login:" || c.Comm.Type != "none" {
		t.Fatalf("defaults: %+v %+v comm %q", q, q.BootCheck, c.Comm.Type)
	}
	c = mustPrepare(t, withQEMU(t, map[string]interface{}{"accelerator": " TCG ", "boot_check": map[string]interface{}{"expect": "x", "timeout": "90s"}, "shutdown_timeout": "10s"}, nil))
	if c.QEMU.Accelerator != qemu.AccelTCG || c.QEMU.BootCheck.Timeout != 90*time.Second || c.QEMU.ShutdownTimeout != 10*time.Second {
		t.Fatalf("given values: %+v", c.QEMU)
	}
}

func TestPrepareRejectsBadQEMUBlocks(t *testing.T) {
	file := someFile(t)
	tests := []struct {
		name  string
		q     map[string]interface{}
		extra map[string]interface{}
		want  []string
	}{
		{"unknown accelerator", map[string]interface{}{"accelerator": "hvf", "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{`qemu.accelerator = "hvf"`}},
		{"negative memory", map[string]interface{}{"memory": -1, "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{"qemu.memory = -1"}},
		{"negative cpus", map[string]interface{}{"cpus": -1, "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{"qemu.cpus = -1"}},
		{"nothing to do", map[string]interface{}{}, nil, []string{"nothing to do"}},
		{"empty expect", map[string]interface{}{"boot_check": map[string]interface{}{"timeout": "1m"}}, nil, []string{"boot_check.expect is required"}},
		{"bad regexp", map[string]interface{}{"boot_check": map[string]interface{}{"expect": "(login"}}, nil, []string{`boot_check.expect = "(login"`}},
		{"negative timeout", map[string]interface{}{"boot_check": map[string]interface{}{"expect": "x", "timeout": "-1s"}}, nil, []string{"boot_check.timeout = -1s"}},
		{"firmware files without uefi", map[string]interface{}{"firmware_code": file, "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{"firmware_code and firmware_vars need firmware = \"uefi\""}},
		{"missing firmware file", map[string]interface{}{"firmware_vars": "/nonexistent/VARS.fd", "boot_check": map[string]interface{}{"expect": "x"}}, map[string]interface{}{"firmware": "uefi"}, []string{`qemu.firmware_vars = "/nonexistent/VARS.fd": not a readable file`}},
		{"missing kernel", map[string]interface{}{"kernel": "/nonexistent/vmlinuz", "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{`qemu.kernel = "/nonexistent/vmlinuz"`}},
		{"initrd without kernel", map[string]interface{}{"initrd": file, "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{"need qemu.kernel"}},
		{"append without kernel", map[string]interface{}{"append": "quiet", "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{"need qemu.kernel"}},
		{"aarch64 bios", map[string]interface{}{"boot_check": map[string]interface{}{"expect": "x"}}, map[string]interface{}{"arch": "aarch64", "firmware": "bios"}, []string{"aarch64 guest has no BIOS"}},
		{"shutdown command without communicator", map[string]interface{}{"shutdown_command": "poweroff", "boot_check": map[string]interface{}{"expect": "x"}}, nil, []string{"shutdown_command needs a communicator"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := prepare(t, withQEMU(t, tt.q, tt.extra))
			wantErr(t, err, tt.want...)
		})
	}
	_, err := prepare(t, map[string]interface{}{"source_image": file, "communicator": "ssh", "ssh_username": "root"})
	wantErr(t, err, `communicator = "ssh" needs a qemu {} block`)
	c := mustPrepare(t, withQEMU(t, map[string]interface{}{"boot_check": map[string]interface{}{"expect": "x"}}, map[string]interface{}{"arch": "aarch64", "firmware": "uefi"}))
	if c.QEMU == nil {
		t.Fatal("aarch64 with uefi is fine")
	}
}

func TestQEMUStepsFollowTheCommunicator(t *testing.T) {
	// Boot check only: QEMU on a snapshot, then power-off; no SSH steps.
	c := mustPrepare(t, withQEMU(t, map[string]interface{}{"boot_check": map[string]interface{}{"expect": "x"}}, nil))
	steps := c.qemuSteps("/out/d.raw")
	if len(steps) != 2 {
		t.Fatalf("boot check only: %d steps %T", len(steps), steps)
	}
	s := steps[0].(*stepQEMU)
	if !s.launch.Snapshot || s.guestPort != 0 || s.expect == nil || s.launch.Disk != "/out/d.raw" || !strings.HasSuffix(s.launch.SerialLog, "serial.log") {
		t.Fatalf("stepQEMU: %+v", s)
	}
	if sh := steps[1].(*stepQEMUShutdown); sh.wrote || sh.timeout != 5*time.Minute {
		t.Fatalf("shutdown: %+v", sh)
	}
	// SSH: the disk is written, the SDK's steps connect and provision.
	c = mustPrepare(t, withQEMU(t, map[string]interface{}{"shutdown_command": "poweroff", "memory": 2048, "cpus": 4, "extra_args": []string{"-device", "virtio-rng-pci"}},
		map[string]interface{}{"communicator": "ssh", "ssh_username": "root", "ssh_password": "x", "ssh_port": 2022}))
	steps = c.qemuSteps("/out/d.raw")
	if len(steps) != 5 {
		t.Fatalf("ssh: %d steps", len(steps))
	}
	s = steps[0].(*stepQEMU)
	if s.launch.Snapshot || s.guestPort != 2022 || s.expect != nil || s.launch.Memory != 2048 || s.launch.CPUs != 4 || len(s.launch.Extra) != 2 {
		t.Fatalf("stepQEMU: %+v", s)
	}
	if _, ok := steps[1].(*communicator.StepConnect); !ok {
		t.Fatalf("step 2 is %T", steps[1])
	}
	if _, ok := steps[2].(*commonsteps.StepProvision); !ok {
		t.Fatalf("step 3 is %T", steps[2])
	}
	if _, ok := steps[3].(*commonsteps.StepCleanupTempKeys); !ok {
		t.Fatalf("step 4 is %T", steps[3])
	}
	if sh := steps[4].(*stepQEMUShutdown); !sh.wrote || sh.command != "poweroff" || sh.disk != "/out/d.raw" {
		t.Fatalf("shutdown: %+v", sh)
	}
	if s.comm != nil {
		t.Fatal("with ssh_password no key is handed to the guest")
	}
	// Without a password: a key pair first, its public key for the guest.
	c = mustPrepare(t, withQEMU(t, map[string]interface{}{"shutdown_command": "poweroff"},
		map[string]interface{}{"communicator": "ssh", "ssh_username": "root", "temporary_key_pair_type": "ed25519"}))
	steps = c.qemuSteps("/out/d.raw")
	if len(steps) != 6 {
		t.Fatalf("ssh with a key pair: %d steps", len(steps))
	}
	kg, ok := steps[0].(*communicator.StepSSHKeyGen)
	if !ok || kg.CommConf != &c.Comm || kg.SSHTemporaryKeyPairType != "ed25519" {
		t.Fatalf("step 1 is %T %+v, want the SDK's key generation on the build's communicator config", steps[0], steps[0])
	}
	if s = steps[1].(*stepQEMU); s.comm != &c.Comm {
		t.Fatal("stepQEMU does not get the communicator config that holds the public key")
	}
	var b Builder
	if _, _, err := b.Prepare(withQEMU(t, map[string]interface{}{"boot_check": map[string]interface{}{"expect": "x"}}, map[string]interface{}{"packer_build_name": "t"})); err != nil {
		t.Fatal(err)
	}
	all := b.Steps()
	if _, ok := all[2].(*stepSourceImage); !ok {
		t.Fatalf("%T", all[2])
	}
	if _, ok := all[3].(*stepQEMU); !ok || all[0].(*stepPreflight).qemu == nil {
		t.Fatalf("the qemu phase follows the disk and preflight checks it: %T", all[3])
	}
}

func TestQEMUPreflightNamesTheMissingPackages(t *testing.T) {
	err := (&qemuPreflight{binary: "qemu-system-nope", arch: "aarch64", firmware: "uefi"}).check()
	wantErr(t, err, "qemu-system-nope not found", "qemu-system-arm")
	state, ui := stepState()
	pre := &stepPreflight{arch: "x86_64", qemu: &qemuPreflight{arch: "x86_64", firmware: "uefi", code: "/nonexistent/CODE.fd"}}
	if pre.Run(context.Background(), state) != multistep.ActionHalt || len(ui.errors) != 1 {
		t.Fatal("preflight must halt on a missing firmware file")
	}
}
