package kiwi

// KIWI mounts its shared cache (/var/cache/kiwi, or --shared-cache-dir)
// into every build's chroot, where apt-get and dnf lock it: two builds on
// one host at once fail ("Could not get lock .../lists/lock"). Packer runs
// the builds of a matrix in parallel, so the runner takes a host-wide file
// lock on the cache before starting kiwi-ng, and builds that share a cache
// take turns (builds with their own caches still run side by side).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// DefaultSharedCacheDir is KIWI's shared cache when --shared-cache-dir is
// not given.
const DefaultSharedCacheDir = "/var/cache/kiwi"

// cacheLockName is the lock file inside the shared cache directory.
const cacheLockName = ".osimage-build.lock"

// cacheLockPoll is how often a waiting build tries the lock again.
var cacheLockPoll = 500 * time.Millisecond

// SharedCacheDir returns the shared cache directory kiwi-ng will use with
// these arguments.
func SharedCacheDir(args []string) string {
	dir := DefaultSharedCacheDir
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--shared-cache-dir="); ok {
			dir = v
		} else if a == "--shared-cache-dir" && i+1 < len(args) {
			dir = args[i+1]
		}
	}
	return dir
}

// lockSharedCache waits until no other build on this host uses the shared
// cache, saying so once through say when it has to wait. The returned
// function releases the lock. A cache directory that cannot be created or
// locked is not an error here (kiwi-ng reports its own problems with it);
// the build then runs without the lock.
func lockSharedCache(ctx context.Context, dir string, say func(string)) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		say(fmt.Sprintf("not serialising KIWI builds: shared cache %s: %v", dir, err))
		return func() {}, nil
	}
	fl := flock.New(filepath.Join(dir, cacheLockName))
	ok, err := fl.TryLock()
	if err != nil {
		say(fmt.Sprintf("not serialising KIWI builds: lock %s: %v", fl.Path(), err))
		return func() {}, nil
	}
	if !ok {
		say(fmt.Sprintf("waiting for another KIWI build on this machine: it uses the shared cache %s (give each build its own with kiwi.extra_global_args = [\"--shared-cache-dir=DIR\"] to run them side by side)", dir))
		if ok, err = fl.TryLockContext(ctx, cacheLockPoll); !ok {
			if err == nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("kiwi-ng not started: waiting for the shared cache %s: %w", dir, err)
		}
	}
	return func() { fl.Unlock() }, nil
}
