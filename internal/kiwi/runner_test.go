package kiwi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeKiwi installs testdata/fake-kiwi-ng as an executable in a temp dir
// and returns a Runner using it in the given mode.
func fakeKiwi(t *testing.T, mode string) (*Runner, *lines) {
	t.Helper()
	src, err := os.ReadFile("testdata/fake-kiwi-ng")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kiwi-ng")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	out := &lines{}
	return &Runner{
		Binary:  bin,
		Env:     []string{"FAKE_KIWI_MODE=" + mode},
		Output:  out.add,
		LogPath: filepath.Join(t.TempDir(), "kiwi.log"),
	}, out
}

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) { l.mu.Lock(); l.l = append(l.l, s); l.mu.Unlock() }
func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

// fakeHost makes the host checks pass (or not) regardless of the machine.
func fakeHost(t *testing.T, uid int, loopControl string) {
	t.Helper()
	oldUID, oldLoop := geteuid, loopControlPath
	geteuid = func() int { return uid }
	loopControlPath = loopControl
	t.Cleanup(func() { geteuid, loopControlPath = oldUID, oldLoop })
}

func description(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "config.xml"), []byte("<image/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildStreamsLinesKeepsALogAndParsesTheResult(t *testing.T) {
	fakeHost(t, 0, os.Args[0]) // any existing path stands for /dev/loop-control
	r, out := fakeKiwi(t, "ok")
	target := filepath.Join(t.TempDir(), "out")
	argsFile := filepath.Join(t.TempDir(), "args")
	r.Env = append(r.Env, "FAKE_KIWI_ARGS="+argsFile)
	res, err := r.Build(context.Background(), Options{
		Description: description(t), TargetDir: target,
		Profiles: []string{"vm"},
		AddRepos: []Repo{{Source: "http://x/$HOME", Type: "apt-deb"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Disk != filepath.Join(target, "test.x86_64-0.0.1.raw") || res.Packages == "" {
		t.Errorf("result = %+v", res)
	}
	got := out.all()
	want := []string{
		"[ INFO    ]: 01:02:03 | Loading XML description",
		"[ INFO    ]: Processing: [##    ] 10%",
		"[ INFO    ]: Processing: [######] 100%",
		"a warning on stderr",
		"[ INFO    ]: 01:02:03 | Result files:",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	log, err := os.ReadFile(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(log) != strings.Join(want, "\n")+"\n" {
		t.Errorf("log file:\n%s", log)
	}
	args, _ := os.ReadFile(argsFile)
	if !strings.Contains(string(args), "--add-repo=http://x/$HOME,apt-deb\n") {
		t.Errorf("arguments were altered on the way:\n%s", args)
	}
}

func TestRunArgumentsReachKiwiUnchangedWithoutAShell(t *testing.T) {
	r, _ := fakeKiwi(t, "noresult")
	argsFile := filepath.Join(t.TempDir(), "args")
	r.Env = append(r.Env, "FAKE_KIWI_ARGS="+argsFile)
	in := []string{"--profile=a b", "--x=$(echo pwned)", "it's", "*", "system", "build", "--target-dir=" + t.TempDir()}
	if err := r.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(argsFile)
	if string(got) != strings.Join(in, "\n")+"\n" {
		t.Errorf("kiwi-ng saw:\n%s\nwant:\n%s", got, strings.Join(in, "\n"))
	}
}

func TestRunFailureCarriesExitStatusLastLinesAndLogPath(t *testing.T) {
	r, _ := fakeKiwi(t, "fail")
	err := r.Run(context.Background(), []string{"system", "build"})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want *BuildError", err)
	}
	if be.ExitCode != 3 || be.State != "exit status 3" {
		t.Errorf("ExitCode = %d, State = %q", be.ExitCode, be.State)
	}
	if len(be.Tail) != DefaultTailLines {
		t.Fatalf("tail has %d lines, want %d", len(be.Tail), DefaultTailLines)
	}
	if last := be.Tail[len(be.Tail)-1]; !strings.Contains(last, "Cleaning up") {
		t.Errorf("last line = %q", last)
	}
	if !strings.Contains(be.Tail[0], "step 23") {
		t.Errorf("first kept line = %q, want step 23 (62 lines, last 40)", be.Tail[0])
	}
	if be.KiwiError != "KiwiCommandError: apt-get: exited with 100" {
		t.Errorf("KiwiError = %q", be.KiwiError)
	}
	msg := err.Error()
	for _, s := range []string{"exit status 3", "KiwiCommandError", "last 40 lines", r.LogPath, "step 60"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error message lacks %q:\n%s", s, msg)
		}
	}
	if log, _ := os.ReadFile(r.LogPath); strings.Count(string(log), "\n") != 62 {
		t.Errorf("log has %d lines, want all 62", strings.Count(string(log), "\n"))
	}
}

func TestRunSurfacesKiwisUnknownProfileError(t *testing.T) {
	r, _ := fakeKiwi(t, "profile")
	err := r.Run(context.Background(), []string{"--profile=nosuch", "system", "build"})
	if err == nil || !strings.Contains(err.Error(), "kiwi-ng failed (exit status 1): KiwiProfileNotFound: profile nosuch not found for host arch x86_64") {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildFailsClearlyWhenKiwiWritesNoResult(t *testing.T) {
	fakeHost(t, 0, os.Args[0])
	r, _ := fakeKiwi(t, "noresult")
	_, err := r.Build(context.Background(), Options{Description: description(t), TargetDir: t.TempDir()})
	if !errors.Is(err, ErrNoResult) {
		t.Fatalf("err = %v, want ErrNoResult", err)
	}
}

func TestBuildFailsWhenTheResultHasNoDisk(t *testing.T) {
	fakeHost(t, 0, os.Args[0])
	r, _ := fakeKiwi(t, "nodisk")
	_, err := r.Build(context.Background(), Options{Description: description(t), TargetDir: t.TempDir()})
	if !errors.Is(err, ErrNoDisk) {
		t.Fatalf("err = %v, want ErrNoDisk", err)
	}
}

func TestPreflightNamesTheDebianPackagesWhenKiwiIsMissing(t *testing.T) {
	r := &Runner{Binary: "kiwi-ng-does-not-exist"}
	err := r.Preflight(Options{Description: description(t)})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install kiwi kiwi-systemdeps-disk-images") {
		t.Fatalf("err = %v", err)
	}
	if err := r.Run(context.Background(), nil); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Run: err = %v", err)
	}
}

func TestPreflightRejectsNonRootAndMissingLoopDevices(t *testing.T) {
	r, _ := fakeKiwi(t, "ok")
	desc := description(t)

	fakeHost(t, 1000, os.Args[0])
	if err := r.Preflight(Options{Description: desc}); !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "uid 1000") {
		t.Errorf("non-root: err = %v", err)
	}
	fakeHost(t, 0, "/nonexistent/loop-control")
	if err := r.Preflight(Options{Description: desc}); !errors.Is(err, ErrNoLoopDevice) || !strings.Contains(err.Error(), "/nonexistent/loop-control") {
		t.Errorf("no loop: err = %v", err)
	}
	fakeHost(t, 0, os.Args[0])
	if err := r.Preflight(Options{Description: desc}); err != nil {
		t.Errorf("all good: err = %v", err)
	}
}

func TestCheckDescriptionFindsConfigXMLOrKiwiFiles(t *testing.T) {
	empty := t.TempDir()
	withKiwi := t.TempDir()
	os.WriteFile(filepath.Join(withKiwi, "vm-base.kiwi"), nil, 0o644)
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name, dir, kiwiFile string
		ok                  bool
		want                string
	}{
		{"config.xml", description(t), "", true, ""},
		{"*.kiwi", withKiwi, "", true, ""},
		{"named kiwi file", withKiwi, "vm-base.kiwi", true, ""},
		{"named kiwi file missing", withKiwi, "other.kiwi", false, "other.kiwi"},
		{"empty dir", empty, "", false, "neither config.xml nor a *.kiwi file"},
		{"missing dir", filepath.Join(empty, "nope"), "", false, "no such file"},
		{"a file", file, "", false, "not a directory"},
		{"no dir given", "", "", false, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDescription(tt.dir, tt.kiwiFile)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNoDescription) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrNoDescription mentioning %q", err, tt.want)
			}
		})
	}
}

// runUntilStarted runs the fake in a hang mode, cancels once it has started
// its child and returns the child's pid, how long Run took after the cancel
// and Run's error.
func runUntilStarted(t *testing.T, mode string, grace time.Duration) (int, time.Duration, error) {
	t.Helper()
	r, out := fakeKiwi(t, mode)
	pidFile := filepath.Join(t.TempDir(), "pid")
	r.Env = append(r.Env, "FAKE_KIWI_PIDFILE="+pidFile)
	r.KillGrace = grace
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	r.Output = func(s string) {
		out.add(s)
		if strings.Contains(s, "started") {
			once.Do(func() { close(started) })
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, []string{"system", "build"}) }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("Run ended before the fake started: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("fake kiwi-ng did not start")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("child %d is not running before the cancel", pid)
	}
	cancel()
	t0 := time.Now()
	select {
	case err := <-errc:
		return pid, time.Since(t0), err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the cancel")
	}
	return 0, 0, nil
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	state, _, ok := statStateGroup(string(b))
	return ok && state != 'Z' && state != 'X'
}

func TestCancelKillsKiwiAndItsChildren(t *testing.T) {
	pid, took, err := runUntilStarted(t, "hang", 5*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if alive(pid) {
		t.Errorf("child %d survived the cancel", pid)
	}
	if took > 4*time.Second {
		t.Errorf("Run took %v after the cancel; SIGINT should have ended the fake at once", took)
	}
}

func TestCancelLetsKiwiCleanUpAfterSIGINT(t *testing.T) {
	pid, _, err := runUntilStarted(t, "graceful", 5*time.Second)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "exit status 130") {
		t.Fatalf("err = %v, want context.Canceled after the fake's own exit 130", err)
	}
	if alive(pid) {
		t.Errorf("child %d survived", pid)
	}
}

func TestCancelEscalatesToSIGKILLWhenKiwiIgnoresSIGINT(t *testing.T) {
	pid, took, err := runUntilStarted(t, "stubborn", 300*time.Millisecond)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v, want context.Canceled after SIGKILL", err)
	}
	if alive(pid) {
		t.Errorf("child %d survived", pid)
	}
	if took < 300*time.Millisecond {
		t.Errorf("Run returned after %v, before the grace period", took)
	}
}

func TestRunDoesNotStartWhenTheContextIsAlreadyDone(t *testing.T) {
	r, out := fakeKiwi(t, "ok")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if len(out.all()) != 0 {
		t.Errorf("kiwi-ng ran: %q", out.all())
	}
}

func TestScanLinesSplitsAtNewlinesAndCarriageReturns(t *testing.T) {
	var got []string
	scanLines(strings.NewReader("a\r\nb\rc\n\n\nd"), func(s string) { got = append(got, s) })
	if strings.Join(got, "|") != "a|b|c|d" {
		t.Errorf("got %q", got)
	}
	got = nil
	scanLines(strings.NewReader(strings.Repeat("x", maxLine+10)+"\ny"), func(s string) { got = append(got, s) })
	if len(got) != 2 || len(got[0]) != maxLine || got[1] != "y" {
		t.Errorf("long line: %d lines, first %d bytes", len(got), len(got[0]))
	}
}

func TestStatStateGroupReadsCommandsWithParens(t *testing.T) {
	state, group, ok := statStateGroup("123 (a (b) c) S 1 456 456 0 -1")
	if !ok || state != 'S' || group != 456 {
		t.Errorf("got %c %d %v", state, group, ok)
	}
	if _, _, ok := statStateGroup("garbage"); ok {
		t.Error("garbage parsed")
	}
}

func TestSharedCacheDirIsKiwisDefaultOrTheGivenOne(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, DefaultSharedCacheDir},
		{[]string{"--debug", "system", "build"}, DefaultSharedCacheDir},
		{[]string{"--shared-cache-dir=/c", "system", "build"}, "/c"},
		{[]string{"--shared-cache-dir", "/d", "system", "build"}, "/d"},
		{[]string{"--shared-cache-dir"}, DefaultSharedCacheDir},
	} {
		if got := SharedCacheDir(tc.args); got != tc.want {
			t.Errorf("SharedCacheDir(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}

func TestBuildsSharingAKiwiCacheTakeTurns(t *testing.T) {
	cache := t.TempDir()
	old := cacheLockPoll
	cacheLockPoll = 20 * time.Millisecond
	t.Cleanup(func() { cacheLockPoll = old })
	hold, err := lockSharedCache(context.Background(), cache, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	r, out := fakeKiwi(t, "noresult")
	done := make(chan error, 1)
	go func() {
		done <- r.Run(context.Background(), []string{"--shared-cache-dir=" + cache, "system", "build"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(strings.Join(out.all(), "\n"), "waiting for another KIWI build") {
		if time.Now().After(deadline) {
			t.Fatalf("no waiting message; output %q", out.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("kiwi-ng ran while another build held the cache: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	hold()
	if err := <-done; err != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
}

func TestAWaitingBuildCanBeCancelled(t *testing.T) {
	cache := t.TempDir()
	hold, err := lockSharedCache(context.Background(), cache, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	r, _ := fakeKiwi(t, "ok")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = r.Run(ctx, []string{"--shared-cache-dir=" + cache, "system", "build"})
	if err == nil || !strings.Contains(err.Error(), "waiting for the shared cache "+cache) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildsWithTheirOwnCachesDoNotWait(t *testing.T) {
	hold, err := lockSharedCache(context.Background(), t.TempDir(), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	r, out := fakeKiwi(t, "noresult")
	if err := r.Run(context.Background(), []string{"--shared-cache-dir=" + t.TempDir(), "system", "build"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(out.all(), "\n"), "waiting") {
		t.Errorf("a build with its own cache waited: %q", out.all())
	}
}
