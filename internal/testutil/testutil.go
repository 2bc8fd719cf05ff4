// Package testutil holds helpers shared by tests: finding external tools,
// and making disk images to test with.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireEnv is the environment variable that turns "tool missing" skips
// into failures. `make test` sets it, so CI cannot pass by skipping.
const RequireEnv = "OSIMAGE_REQUIRE_TOOLS"

// Required reports whether OSIMAGE_REQUIRE_TOOLS=1 forbids skipping.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Need skips the test when ok is false, saying what is missing and how to
// get it; under OSIMAGE_REQUIRE_TOOLS=1 it fails the test with the same
// message instead, so `make test` cannot pass by skipping.
func Need(t testing.TB, ok bool, what, howToGet string) {
	t.Helper()
	if ok {
		return
	}
	msg := what + "; " + howToGet
	if Required() {
		t.Fatal(msg + " (" + RequireEnv + "=1 forbids skipping)")
	}
	t.Skip(msg)
}

// NeedRoot needs the test to run as root; why says what root is for.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "not root ("+why+")", "run the tests as root, as make test does on the CI machines")
}

// NeedLoop needs root and loop devices (/dev/loop-control), as KIWI and
// losetup do.
func NeedLoop(t testing.TB) {
	t.Helper()
	NeedRoot(t, "loop devices")
	_, err := os.Stat("/dev/loop-control")
	Need(t, err == nil, fmt.Sprintf("no loop devices (%v)", err),
		"load the loop module (modprobe loop), or run in a VM or a privileged container that has /dev/loop-control")
}

// NeedTool returns the path of an external program, or skips the test
// (fails it when OSIMAGE_REQUIRE_TOOLS=1) naming what to install.
func NeedTool(t testing.TB, name, debianPkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if c := filepath.Join(dir, name); isExec(c) {
			return c
		}
	}
	Need(t, false, name+" not found", "install the Debian package "+debianPkg)
	return ""
}

// NeedBuilt returns a program `make tools` builds into the repository's
// .tools/bin (cosign, crane, ...): from PATH, else from .tools/bin above the
// test's directory; or it skips (fails under OSIMAGE_REQUIRE_TOOLS=1)
// saying to run make tools.
func NeedBuilt(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			if c := filepath.Join(d, ".tools", "bin", name); isExec(c) {
				return c
			}
		}
	}
	Need(t, false, name+" not found in PATH or .tools/bin", "run make tools (it builds "+name+" from the pinned tools modules)")
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// SparseFile creates a file of size bytes under dir that holds data only at
// the given offsets and is a hole everywhere else.
func SparseFile(t testing.TB, path string, size int64, chunks map[int64][]byte) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range chunks {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// WriteTree writes a directory layout into a new temporary directory and
// returns it: path -> content, "->target" for a symlink, a path ending in
// "/" for an empty directory (trees for mkfs.ext4 -d).
func WriteTree(t testing.TB, tree map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range tree {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Run runs a command and fails the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// DirNames lists the names in dir (none when it cannot be read), for
// messages about what a directory holds.
func DirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
