// Package acc is the acceptance-test harness: it builds the plugin, installs
// it into a temporary plugin directory with the real packer binary, and runs
// packer on templates. Tests in ../ use it; `make test` runs them.
package acc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// PluginSource is the source address templates use in required_plugins.
const PluginSource = "github.com/osimage/osimage"

// Env is a packer binary with this plugin installed in its own plugin
// directory.
type Env struct {
	Packer    string // path of the packer binary
	PluginDir string // PACKER_PLUGIN_PATH with the plugin installed
	Root      string // repository root
}

var (
	once    sync.Once
	shared  *Env
	initErr error
	tmpRoot string
)

// Setup returns the shared environment, building and installing the plugin
// on first use. It skips (or, under OSIMAGE_REQUIRE_TOOLS=1, fails) when no
// packer >= 1.10 is available.
func Setup(t testing.TB) *Env {
	t.Helper()
	once.Do(func() { shared, initErr = setup() })
	if initErr != nil {
		if os.Getenv(testutil.RequireEnv) != "1" && strings.Contains(initErr.Error(), "no packer") {
			t.Skip(initErr)
		}
		t.Fatal(initErr)
	}
	return shared
}

// Cleanup removes the temporary plugin directory; call it from TestMain.
func Cleanup() {
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
}

func repoRoot() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && filepath.Base(filepath.Dir(d)) != "" {
			if b, _ := os.ReadFile(filepath.Join(d, "go.mod")); bytes.Contains(b, []byte("module github.com/osimage/packer-plugin-osimage\n")) {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("repository root not found above %s", dir)
}

// FindPacker returns a packer >= 1.10: $PACKER_BIN, the repository's
// .tools/bin/packer (make tools), or packer on PATH.
func FindPacker(root string) (string, error) {
	var cands []string
	if p := os.Getenv("PACKER_BIN"); p != "" {
		cands = append(cands, p)
	}
	cands = append(cands, filepath.Join(root, ".tools", "bin", "packer"))
	if p, err := exec.LookPath("packer"); err == nil {
		cands = append(cands, p)
	}
	var seen []string
	for _, c := range cands {
		out, err := exec.Command(c, "version").Output()
		if err != nil {
			continue
		}
		m := regexp.MustCompile(`Packer v(\d+)\.(\d+)`).FindSubmatch(out)
		if m == nil {
			continue
		}
		maj, _ := strconv.Atoi(string(m[1]))
		min, _ := strconv.Atoi(string(m[2]))
		if maj > 1 || maj == 1 && min >= 10 {
			return c, nil
		}
		seen = append(seen, fmt.Sprintf("%s is v%d.%d", c, maj, min))
	}
	return "", fmt.Errorf("no packer >= 1.10 found (run make tools; %s)", strings.Join(seen, ", "))
}

func setup() (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	packer, err := FindPacker(root)
	if err != nil {
		return nil, err
	}
	tmpRoot, err = os.MkdirTemp("", "osimage-acc-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(tmpRoot, "packer-plugin-osimage")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/osimage/packer-plugin-osimage/version.VersionPrerelease=dev", "-o", bin, ".")
	build.Dir = root
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build plugin: %v\n%s", err, out)
	}
	env := &Env{Packer: packer, PluginDir: filepath.Join(tmpRoot, "plugins"), Root: root}
	if r := env.run("", nil, "plugins", "install", "--path", bin, PluginSource); r.Err != nil {
		return nil, fmt.Errorf("packer plugins install: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	return env, nil
}

// Result is one packer run.
type Result struct {
	Args           []string
	Stdout, Stderr string
	Err            error
	ExitCode       int
	Duration       time.Duration
}

// Output is stdout and stderr together, for assertions and failure logs.
func (r Result) Output() string { return r.Stdout + r.Stderr }

func (e *Env) run(dir string, extraEnv []string, args ...string) Result {
	cmd := exec.Command(e.Packer, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_PLUGIN_PATH="+e.PluginDir, "PACKER_NO_COLOR=1")
	cmd.Env = append(cmd.Env, extraEnv...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	start := time.Now()
	err := cmd.Run()
	r := Result{Args: args, Stdout: so.String(), Stderr: se.String(), Err: err, Duration: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.ExitCode = ee.ExitCode()
	}
	return r
}

// Run runs packer with args in dir (with extra environment variables).
func (e *Env) Run(t testing.TB, dir string, extraEnv []string, args ...string) Result {
	t.Helper()
	r := e.run(dir, extraEnv, args...)
	t.Logf("packer %s (%.1fs, exit %d)", strings.Join(args, " "), r.Duration.Seconds(), r.ExitCode)
	return r
}

// MustRun is Run that fails the test when packer fails.
func (e *Env) MustRun(t testing.TB, dir string, extraEnv []string, args ...string) Result {
	t.Helper()
	r := e.Run(t, dir, extraEnv, args...)
	if r.Err != nil {
		t.Fatalf("packer %s failed: %v\n%s", strings.Join(args, " "), r.Err, r.Output())
	}
	return r
}

// WriteTemplate writes a template file into dir and returns its path.
func WriteTemplate(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// RequiredPlugins is the packer block every test template starts with.
const RequiredPlugins = `packer {
  required_plugins {
    osimage = {
      source  = "` + PluginSource + `"
      version = ">= 0.1.0"
    }
  }
}
`
