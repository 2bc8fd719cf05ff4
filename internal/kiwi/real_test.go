package kiwi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/testutil/debmirror"
)

// realRunner returns a runner for a real KIWI build, or skips the test
// (fails it under OSIMAGE_REQUIRE_TOOLS=1) saying what is missing: -short,
// root, loop devices or kiwi-ng.
func realRunner(t *testing.T) *kiwi.Runner {
	t.Helper()
	testutil.Need(t, !testing.Short(), "real KIWI build skipped in -short mode (it takes minutes)", "run the tests without -short")
	testutil.NeedLoop(t)
	r := &kiwi.Runner{}
	_, err := r.LookPath()
	testutil.Need(t, err == nil, fmt.Sprintf("real KIWI build: %v", err), "apt-get install "+kiwi.DebianPackages)
	return r
}

// TestRealBuildCancel cancels a real build of testdata/bookworm while
// debootstrap unpacks packages into KIWI's image root (dpkg chrooted there,
// 20 s after KIWI starts it) and checks that nothing is left: no process, no
// mount, no loop device, and UnmountAndRemove removes the partial output. It
// needs root, loop devices, kiwi and the Debian mirror; make test runs it
// (and fails it under OSIMAGE_REQUIRE_TOOLS=1 where those are missing). The
// finished real build is checked by the acceptance tests
// (test.TestPackerBuildsARealKiwiDisk); both give KIWI their own shared
// cache directory, so they run side by side:
//
//	go test -run TestRealBuildCancel -timeout 30m -v ./internal/kiwi/
func TestRealBuildCancel(t *testing.T) {
	r := realRunner(t)
	mirror, err := debmirror.URL()
	if err != nil {
		t.Fatal(err)
	}
	desc, _ := filepath.Abs("testdata/bookworm")
	out := t.TempDir()
	target := filepath.Join(out, "kiwi")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt string
	stopped := make(chan time.Time, 1)
	r.WrapperDir = filepath.Join(out, "bin")
	r.LogPath = filepath.Join(out, "kiwi.log")
	r.Output = func(line string) {
		if cancelledAt == "" && strings.Contains(line, "Installing bootstrap packages") {
			cancelledAt = line
			time.AfterFunc(20*time.Second, func() { stopped <- time.Now(); cancel() })
		}
	}
	t0 := time.Now()
	// Its own shared cache: KIWI builds sharing one take turns (the
	// runner's lock), and the acceptance test's real build runs meanwhile.
	_, err = r.Build(ctx, kiwi.Options{Description: desc, TargetDir: target, SetRepo: &kiwi.Repo{Source: mirror},
		GlobalArgs: []string{"--shared-cache-dir=" + filepath.Join(out, "kiwi-cache")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	stoppedAt := <-stopped
	t.Logf("cancelled 20 s after %q; Run returned %v after the cancel (%v in all): %v",
		cancelledAt, time.Since(stoppedAt).Round(time.Millisecond), time.Since(t0).Round(time.Second), err)

	log, _ := os.ReadFile(r.LogPath)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	t.Logf("last log lines:\n%s", strings.Join(lines[max(0, len(lines)-8):], "\n"))

	// No process may still live in (chroot) or work on the target.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		for _, l := range []string{"root", "cwd"} {
			if dest, err := os.Readlink(filepath.Join(p, l)); err == nil && strings.HasPrefix(dest, target) {
				cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
				t.Errorf("process %s has its %s in %s: %q", filepath.Base(p), l, dest, cmd)
			}
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, target) {
			t.Logf("mount left by the cancelled KIWI (UnmountAndRemove handles it): %s", l)
		}
	}
	if err := kiwi.UnmountAndRemove(target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still there: %v", err)
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Fatalf("host /dev damaged: %v", err)
	}
}
