// Package testutil holds helpers shared by tests: finding external tools,
// and making disk images to test with.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv is the environment variable that turns "tool missing" skips
// into failures. `make test` sets it, so CI cannot pass by skipping.
const RequireEnv = "OSIMAGE_REQUIRE_TOOLS"

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
	msg := name + " not found; install the Debian package " + debianPkg
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg + " (" + RequireEnv + "=1 forbids skipping)")
	}
	t.Skip(msg)
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

// Run runs a command and fails the test with its output when it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
