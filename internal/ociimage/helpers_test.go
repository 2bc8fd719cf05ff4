package ociimage

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// writeFile writes n pseudo-random bytes (seeded by name) and returns the
// artifact file with its recorded sha256 and size, as a builder records it.
func writeFile(t testing.TB, dir, name, role string, n int) artifact.File {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	r := rand.New(rand.NewChaCha8(seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return artifact.File{Path: p, Role: role, Size: int64(n), SHA256: hex.EncodeToString(s[:])}
}

func sha256Of(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// fixture is the files of the four test variants.
type fixture struct {
	dir     string
	entries []Entry
}

// makeEntries makes amd64 and arm64 x virtualization and baremetal entries:
// virtualization carries a raw disk, baremetal kernel, initrd, rootfs and
// cmdline. rootfsSize is the size of each rootfs/disk.
func makeEntries(t testing.TB, rootfsSize int) fixture {
	t.Helper()
	dir := t.TempDir()
	var es []Entry
	for _, arch := range []string{"x86_64", "aarch64"} {
		disk := writeFile(t, dir, arch+".raw", artifact.RoleDisk, rootfsSize)
		disk.Format = "raw"
		es = append(es, Entry{Arch: arch, BootMode: Virtualization, Key: "test-" + arch + "-virtualization",
			Files: []artifact.File{disk}, KernelCmdline: "console=ttyS0"})
		es = append(es, Entry{Arch: arch, BootMode: Baremetal, Key: "test-" + arch + "-baremetal", Files: []artifact.File{
			writeFile(t, dir, arch+".kernel", artifact.RoleKernel, 300<<10),
			writeFile(t, dir, arch+".initrd", artifact.RoleInitrd, 500<<10),
			writeFile(t, dir, arch+".rootfs", artifact.RoleRootfs, rootfsSize/2),
			cmdlineFile(t, dir, arch+".cmdline", "root=/dev/ram0 console=ttyAMA0\n"),
		}})
	}
	return fixture{dir: dir, entries: es}
}

func cmdlineFile(t testing.TB, dir, name, content string) artifact.File {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return artifact.File{Path: p, Role: artifact.RoleCmdline}
}

// ociTool finds a program `make tools` builds into .tools/bin (or on PATH);
// it fails under OSIMAGE_REQUIRE_TOOLS=1 and skips otherwise.
func ociTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", "..", ".tools", "bin", name)); err == nil {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found: run make tools (it builds " + name + " from tools/oci)"
	if os.Getenv(testutil.RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
