package ociimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Destination says where a plan goes: a registry repository, or an OCI
// image layout directory (exactly one).
type Destination struct {
	// Repository is "host[:port]/path", e.g. "ghcr.io/org/os".
	Repository string
	// Layout is a directory holding (or to hold) an OCI image layout.
	Layout string

	// Insecure allows plain HTTP to a registry that is not on loopback.
	Insecure bool
	// Username and Password, when set, replace the keychain.
	Username, Password string
	// Keychain defaults to authn.DefaultKeychain (Docker and Podman files).
	Keychain authn.Keychain
	// Jobs is the number of blobs uploaded at once; default 4.
	Jobs int
	// Backoff of go-containerregistry's retries; default 5 tries from 1s, x2.
	Backoff *remote.Backoff
	// Transport is the base HTTP transport; default remote.DefaultTransport.
	Transport http.RoundTripper

	// LockDir holds the lock files that serialise builds on one machine;
	// default os.TempDir().
	LockDir string
	// MaxAttempts of the read-merge-write-read-back loop; default 8.
	MaxAttempts int
	// Settle is how long to wait after writing an index before reading it
	// back, so that a runner on another machine writing at the same moment
	// is seen; default 200ms for registries, none for layouts (whose
	// writers share a machine and its lock). Negative: no wait.
	Settle time.Duration

	// Progress, if set, gets bytes done of total while blobs go out.
	Progress func(done, total int64)
	// Logf, if set, gets one line per notable event (retries).
	Logf func(format string, args ...any)

	// hook runs after each index write; tests use it to simulate another
	// machine writing between our write and our read-back.
	hook func(tag string)
	// progressTick is how often Progress hears of uploads under way;
	// default 250ms (tests set it long to see only the final report).
	progressTick time.Duration
}

// ManifestResult is one pushed manifest.
type ManifestResult struct {
	Arch, BootMode string
	Digest         string
	Ref            string // repository@digest, or layout-dir@digest
}

// IndexResult is the index at one tag after the merge.
type IndexResult struct {
	Tag     string
	Ref     string
	Digest  string
	Entries int  // entries of the whole index, other builds' included
	Changed bool // false when the tag already held exactly this index
}

// Result is what Publish did.
type Result struct {
	Destination string
	Manifests   []ManifestResult
	Indexes     []IndexResult
	ArchTags    []string // references
	// BlobsSent and BytesSent count blob uploads that carried bytes (retries
	// included); blobs the registry already had are not sent.
	BlobsSent int
	BytesSent int64
	// Credentials says which credential source was used.
	Credentials string
}

// target is what Publish needs from a destination.
type target interface {
	describe() string
	ref(tagOrDigest string) string
	lockKey() string
	writeManifests(ctx context.Context, p *Plan) error
	tagArch(ctx context.Context, p *Plan) error
	get(ctx context.Context, tag string) (Existing, error)
	putIndex(ctx context.Context, tag string, raw []byte) error
	stats() (blobs int, bytes int64, creds string)
}

// Publish writes the plan: blobs and manifests (each blob once; blobs the
// destination has are not sent), the per-arch tags, then for each index tag
// read, merge, write and read back under a file lock, retrying when another
// writer removed this build's entries.
func Publish(ctx context.Context, p *Plan, d Destination) (*Result, error) {
	var t target
	var err error
	switch {
	case d.Repository != "" && d.Layout != "":
		return nil, fmt.Errorf("destination: both a repository (%s) and a layout directory (%s); want one", d.Repository, d.Layout)
	case d.Repository != "":
		t, err = newRegistryTarget(ctx, d)
		if d.Settle == 0 {
			d.Settle = 200 * time.Millisecond
		}
	case d.Layout != "":
		t, err = newLayoutTarget(d)
	default:
		return nil, fmt.Errorf("destination: neither a repository nor a layout directory")
	}
	if err != nil {
		return nil, err
	}
	return publish(ctx, p, t, d)
}

func publish(ctx context.Context, p *Plan, t target, d Destination) (*Result, error) {
	res := &Result{Destination: t.describe()}
	// Before anything is written: every index tag must hold nothing, an
	// index this build may merge into, or (with force) anything. This also
	// finds a refused login or an unreachable registry before any upload.
	if err := preflight(ctx, p, t); err != nil {
		return nil, err
	}
	// Blobs and manifests are content-addressed: parallel builds may send
	// them side by side. Tags and indexes are merged one build at a time.
	if err := t.writeManifests(ctx, p); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, d.LockDir, t.lockKey())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := t.tagArch(ctx, p); err != nil {
		return nil, err
	}
	for _, m := range p.Manifests {
		res.Manifests = append(res.Manifests, ManifestResult{Arch: m.Arch, BootMode: m.BootMode, Digest: m.Digest.String(), Ref: t.ref("@" + m.Digest.String())})
	}
	for _, at := range p.ArchTags {
		res.ArchTags = append(res.ArchTags, t.ref(":"+at.Tag))
	}
	for _, it := range p.Indexes {
		var add []v1.Descriptor
		for _, mi := range it.Manifests {
			add = append(add, descriptorFor(p.Manifests[mi], it))
		}
		ir, err := mergeIndex(ctx, t, it, add, p.Force, d)
		if err != nil {
			return nil, err
		}
		res.Indexes = append(res.Indexes, ir)
	}
	res.BlobsSent, res.BytesSent, res.Credentials = t.stats()
	return res, nil
}

func preflight(ctx context.Context, p *Plan, t target) error {
	for _, it := range p.Indexes {
		cur, err := t.get(ctx, it.Tag)
		if err != nil {
			return err
		}
		var add []v1.Descriptor
		for _, mi := range it.Manifests {
			add = append(add, descriptorFor(p.Manifests[mi], it))
		}
		if _, _, err := Merge(t.ref(":"+it.Tag), cur, add, it.Annotations, p.Force); err != nil {
			return err
		}
	}
	return nil
}

func mergeIndex(ctx context.Context, t target, it IndexTag, add []v1.Descriptor, force bool, d Destination) (IndexResult, error) {
	attempts := d.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	where := t.ref(":" + it.Tag)
	for attempt := 1; ; attempt++ {
		cur, err := t.get(ctx, it.Tag)
		if err != nil {
			return IndexResult{}, err
		}
		raw, _, err := Merge(where, cur, add, it.Annotations, force)
		if err != nil {
			return IndexResult{}, err
		}
		changed := !cur.Found || !bytes.Equal(raw, cur.Raw)
		if changed {
			if err := t.putIndex(ctx, it.Tag, raw); err != nil {
				return IndexResult{}, err
			}
			if d.hook != nil {
				d.hook(it.Tag)
			}
			if err := sleep(ctx, d.Settle); err != nil {
				return IndexResult{}, err
			}
		}
		back, err := t.get(ctx, it.Tag)
		if err != nil {
			return IndexResult{}, err
		}
		idx, perr := parseIndex(where, back)
		missing := missingFrom(idx, add)
		if perr == nil && len(missing) == 0 {
			return IndexResult{Tag: it.Tag, Ref: where, Digest: digestOf(back.Raw).String(), Entries: len(idx.Manifests), Changed: changed}, nil
		}
		if attempt >= attempts {
			if perr != nil {
				return IndexResult{}, fmt.Errorf("%s after %d attempts: %w", where, attempt, perr)
			}
			return IndexResult{}, fmt.Errorf("%s: %d of this build's entries missing after %d attempts: %w", where, len(missing), attempt, ErrLostRace)
		}
		if d.Logf != nil {
			d.Logf("%s: another writer replaced the index (%d of our entries missing); merging again (attempt %d of %d)", where, len(missing), attempt+1, attempts)
		}
		wait := time.Duration(attempt)*100*time.Millisecond + rand.N(100*time.Millisecond)
		if err := sleep(ctx, wait); err != nil {
			return IndexResult{}, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lockFile takes an exclusive flock on a file named after key, so builds on
// one machine merge into a destination one at a time.
func lockFile(ctx context.Context, dir, key string) (func(), error) {
	if dir == "" {
		dir = os.TempDir()
	}
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(dir, "osimage-oci-"+hex.EncodeToString(sum[:8])+".lock")
	fl := flock.New(path)
	ok, err := fl.TryLockContext(ctx, 50*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("lock %s for %s: %w", path, key, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s for %s: not acquired", path, key)
	}
	return func() { fl.Unlock() }, nil
}
