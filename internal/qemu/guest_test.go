package qemu

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/qemu/qemutest"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

type guest struct{ qemutest.Guest }

const guestMarker = qemutest.Marker

func testGuest(t testing.TB, arch string) guest { return guest{qemutest.New(t, arch)} }

// launch is a direct kernel boot of the guest under TCG with its files in
// dir.
func (g guest) launch(dir, mode string) Launch {
	return Launch{
		Arch: g.Arch, Accel: AccelTCG, Memory: 512, CPUs: 2,
		Kernel: g.Kernel, Initrd: g.Initrd, Append: g.Append(mode),
		SerialLog: filepath.Join(dir, "serial.log"), QMPSocket: filepath.Join(dir, "qmp.sock"),
		Extra: []string{"-no-reboot"},
	}
}

func needQEMU(t testing.TB, arch string) {
	t.Helper()
	testutil.NeedTool(t, BinaryFor(arch), DebianPackage(arch))
}

// shortDir is a temporary directory with a short path: unix socket paths
// are limited to 107 bytes and t.TempDir's can be longer.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "oq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// needFirmware finds the host's UEFI firmware for arch, or skips (fails
// under OSIMAGE_REQUIRE_TOOLS=1) naming the package.
func needFirmware(t testing.TB, arch string) Firmware {
	t.Helper()
	fw, err := FindFirmware("", arch, FirmwareUEFI, "", "")
	if err != nil {
		if os.Getenv(testutil.RequireEnv) == "1" {
			t.Fatal(err.Error() + " (" + testutil.RequireEnv + "=1 forbids skipping)")
		}
		t.Skip(err)
	}
	return fw
}

func dialTCP(port int) (net.Conn, error) {
	return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}
