//go:build unix

package testutil

// Choice: a case that needs an unprivileged user re-executes the test binary
// as nobody (65534) rather than skipping under root, so root CI covers it.

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// UnprivilegedEnv is set to "1" in the child that Unprivileged starts.
const UnprivilegedEnv = "OSIMAGE_TEST_UNPRIVILEGED"

// NobodyID is the uid and gid the child runs as.
const NobodyID = 65534

// Unprivileged makes the calling test run as a user without privileges.
// When the process is not root (or already is the child), it returns true
// and the test goes on. As root it copies the test binary where nobody can
// run it, re-executes it as uid/gid 65534 with only this test selected,
// fails t with the child's output unless the test passed there (a skip in
// the child is a failure), and returns false: the caller then returns.
//
//	if !testutil.Unprivileged(t) {
//		return
//	}
//
// The test body must not depend on anything the parent made: the child is
// a new process with its own TempDir.
func Unprivileged(t *testing.T) bool {
	t.Helper()
	if os.Getenv(UnprivilegedEnv) == "1" {
		if os.Geteuid() == 0 {
			t.Fatalf("%s=1 but the test still runs as root", UnprivilegedEnv)
		}
		return true
	}
	if os.Geteuid() != 0 {
		return true
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test builds the binary in a private (0700) directory: copy it out.
	dir, err := os.MkdirTemp("", "osimage-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(exe))
	if err := copyFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, NobodyID, NobodyID); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(bin, "-test.run", strings.Join(parts, "/"), "-test.v", "-test.count=1")
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "TMPDIR" && k != "GOCOVERDIR" && k != UnprivilegedEnv {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, UnprivilegedEnv+"=1", "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: NobodyID, Gid: NobodyID, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	passed := strings.Contains(string(out), "--- PASS: "+t.Name()+" ")
	if err != nil || !passed {
		t.Fatalf("as uid %d (re-executed %s): %v, passed=%v\n%s", NobodyID, t.Name(), err, passed, out)
	}
	t.Logf("ran as uid %d in a child process", NobodyID)
	return false
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
