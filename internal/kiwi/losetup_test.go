package kiwi

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNeedsWrapperOnlyWhenLoopMaxPartIsZero(t *testing.T) {
	for _, tt := range []struct {
		in   string
		need bool
		bad  bool
	}{
		{"0\n", true, false},
		{"8\n", false, false},
		{"1", false, false},
		{"x", false, true},
	} {
		need, reason, err := needsWrapper(tt.in)
		if (err != nil) != tt.bad || need != tt.need {
			t.Errorf("needsWrapper(%q) = %v, %q, %v", tt.in, need, reason, err)
		}
	}
}

func TestLosetupWrapperNeededReadsTheLoopParameter(t *testing.T) {
	old := loopMaxPartPath
	t.Cleanup(func() { loopMaxPartPath = old })
	dir := t.TempDir()

	loopMaxPartPath = filepath.Join(dir, "missing")
	if need, reason, err := LosetupWrapperNeeded(); err != nil || !need || !strings.Contains(reason, "not loaded") {
		t.Errorf("missing parameter: %v %q %v", need, reason, err)
	}
	loopMaxPartPath = filepath.Join(dir, "max_part")
	os.WriteFile(loopMaxPartPath, []byte("16\n"), 0o644)
	if need, _, err := LosetupWrapperNeeded(); err != nil || need {
		t.Errorf("max_part=16: %v %v", need, err)
	}
}

// fakeLosetup writes a "real" losetup that prints its arguments.
func fakeLosetup(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "losetup")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho \"real: $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLosetupWrapperAddsPartscanOnlyToTheAttachCall(t *testing.T) {
	real := fakeLosetup(t)
	script, err := LosetupWrapperScript(real)
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(t.TempDir(), "losetup")
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", "--show", "/tmp/disk image.raw"}, "real: -P -f --show /tmp/disk image.raw"},
		{[]string{"--sector-size", "4096", "-f", "--show", "/d"}, "real: -P --sector-size 4096 -f --show /d"},
		{[]string{"-d", "/dev/loop0"}, "real: -d /dev/loop0"},
		{[]string{"--sector-size"}, "real: --sector-size"},
	} {
		out, err := exec.Command(w, tt.args...).CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("losetup %q ran %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestLosetupWrapperScriptRejectsUnsafePaths(t *testing.T) {
	for _, p := range []string{"losetup", "/usr/sbin/lo'setup", "/a\nb"} {
		if _, err := LosetupWrapperScript(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}

func TestWriteLosetupWrapperMakesAnExecutable(t *testing.T) {
	old := realLosetupCandidates
	t.Cleanup(func() { realLosetupCandidates = old })
	realLosetupCandidates = []string{"/nonexistent/losetup", fakeLosetup(t)}

	dir := filepath.Join(t.TempDir(), "wrap")
	p, err := WriteLosetupWrapper(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(p, "-f", "--show", "x").Output()
	if err != nil || strings.TrimSpace(string(out)) != "real: -P -f --show x" {
		t.Fatalf("wrapper ran %q, %v", out, err)
	}

	realLosetupCandidates = []string{"/nonexistent/losetup"}
	if _, err := WriteLosetupWrapper(dir); err == nil || !strings.Contains(err.Error(), "util-linux") {
		t.Errorf("err = %v", err)
	}
}

func TestRunPutsTheWrapperFirstInPathWhenNeeded(t *testing.T) {
	oldP, oldC := loopMaxPartPath, realLosetupCandidates
	t.Cleanup(func() { loopMaxPartPath, realLosetupCandidates = oldP, oldC })
	realLosetupCandidates = []string{fakeLosetup(t)}
	loopMaxPartPath = filepath.Join(t.TempDir(), "max_part")

	for _, maxPart := range []string{"0", "8"} {
		t.Run("max_part="+maxPart, func(t *testing.T) {
			os.WriteFile(loopMaxPartPath, []byte(maxPart+"\n"), 0o644)
			r, out := fakeKiwi(t, "noresult")
			r.WrapperDir = filepath.Join(t.TempDir(), "bin")
			r.Env = append(r.Env, "PATH=/usr/bin:/bin")
			env, notice, err := r.environ()
			if err != nil {
				t.Fatal(err)
			}
			path := ""
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, "PATH="); ok {
					path = v
				}
			}
			if maxPart == "0" {
				if path != r.WrapperDir+":/usr/bin:/bin" || !strings.Contains(notice, "adds -P") {
					t.Errorf("PATH = %q, notice %q", path, notice)
				}
			} else if path != "/usr/bin:/bin" || !strings.Contains(notice, "no losetup wrapper") {
				t.Errorf("PATH = %q, notice %q", path, notice)
			}
			if err := r.Run(context.Background(), []string{"--target-dir=" + t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			if got := out.all(); len(got) == 0 || got[0] != notice {
				t.Errorf("first line %q, want the notice %q", got, notice)
			}
		})
	}
}
