package ociimage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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
	// ChunkSize, when positive, sends layers larger than it in chunks of
	// this many bytes, each failed chunk resumed from what the registry
	// received (see chunked.go); default 0: each blob in one request.
	ChunkSize int64
	// Backoff of go-containerregistry's retries; default 5 tries from 1s, x2.
	Backoff *remote.Backoff
	// Transport is the base HTTP transport; default remote.DefaultTransport.
	Transport http.RoundTripper

	// LockDir holds the lock files that serialise builds on one machine,
	// and the record of what they wrote; default a directory of the
	// user's own under os.TempDir().
	LockDir string
	// MaxAttempts of the merge when another writer replaces the index
	// right after ours; default 8.
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

	// resumeOver: without ChunkSize, layers larger than this go in one
	// resumable request (chunked.go); default 2 GiB.
	resumeOver int64
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
	// TagsWritten are the tags this publish wrote (arch and index tags);
	// a tag that already held what it would write is not written.
	TagsWritten []string
	// BlobsSent and BytesSent count blob upload requests that carried bytes
	// (retries and chunks included); blobs the registry already had are not
	// sent.
	BlobsSent int
	BytesSent int64
	// Credentials says which credential source was used.
	Credentials string
}

// target is what Publish needs from a destination.
type target interface {
	describe() string
	// layerLimit is the registry's documented largest layer (0: none
	// known) and the registry's name.
	layerLimit() (int64, string)
	ref(tagOrDigest string) string
	lockKey() string
	// writeManifests sends the blobs, the manifests and the arch tags not
	// in skip (those already hold their manifest).
	writeManifests(ctx context.Context, p *Plan, skip map[string]bool) error
	tagArch(ctx context.Context, p *Plan, skip map[string]bool) error
	get(ctx context.Context, tag string) (Existing, error)
	// head returns the digest a tag holds ("" for nothing).
	head(ctx context.Context, tag string) (string, error)
	// hasManifest tells whether a manifest is there by digest.
	hasManifest(ctx context.Context, digest v1.Hash) (bool, error)
	putIndex(ctx context.Context, tag string, raw []byte) error
	stats() (blobs int, bytes int64, creds string)
}

// Publish writes the plan: blobs and manifests (each blob once; blobs the
// destination has are not sent), the per-arch tags that do not hold their
// manifest yet, then for each index tag, under a file lock, merges this
// build's entries into what the tag holds, what this machine last wrote
// there and what the other builds' arch tags hold, and writes the result
// when it differs from what the tag holds.
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

// firstRead is what a tag held before anything was written.
type firstRead struct {
	cur Existing
	// unknown: the registry refused to say (Docker Hub answers 401 and
	// GHCR 403 DENIED for a repository that does not exist yet, even to
	// valid credentials); the uploads prove access, and the tag is read
	// again before the merge.
	unknown bool
}

func publish(ctx context.Context, p *Plan, t target, d Destination) (*Result, error) {
	res := &Result{Destination: t.describe()}
	if err := checkLayerSizes(p, t); err != nil {
		return nil, err
	}
	// Before anything is written: every index tag must hold nothing, an
	// index this build may merge into, or (with force) anything; every
	// arch tag nothing, this build's manifest, or an earlier manifest of
	// the same architecture and boot mode. This also finds an unreachable
	// registry before any upload.
	first, skip, err := preflight(ctx, p, t)
	if err != nil {
		return nil, err
	}
	// Blobs and manifests are content-addressed: parallel builds may send
	// them side by side. Arch tags have one writer each (their build).
	if p.IndexMode != IndexOnly {
		if err := t.writeManifests(ctx, p, skip); err != nil {
			return nil, err
		}
	}
	unlock, err := lockFile(ctx, d.LockDir, t.lockKey())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := t.tagArch(ctx, p, skip); err != nil {
		return nil, err
	}
	for _, m := range p.Manifests {
		res.Manifests = append(res.Manifests, ManifestResult{Arch: m.Arch, BootMode: m.BootMode, Digest: m.Digest.String(), Ref: t.ref("@" + m.Digest.String())})
	}
	for _, at := range p.ArchTags {
		res.ArchTags = append(res.ArchTags, t.ref(":"+at.Tag))
		if !skip[at.Tag] {
			res.TagsWritten = append(res.TagsWritten, at.Tag)
		}
	}
	if p.IndexMode != IndexNone {
		rec, err := loadRecord(d.LockDir, t.lockKey())
		if err != nil {
			return nil, err
		}
		for _, it := range p.Indexes {
			ir, err := mergeIndex(ctx, p, t, it, first[it.Tag], rec, d)
			// Recorded after each tag: a later tag failing must not
			// leave this machine without the record of what it wrote.
			if serr := rec.save(); err == nil {
				err = serr
			}
			if err != nil {
				return nil, err
			}
			if ir.Tag == "" {
				continue // IndexOnly: no build wrote an entry for this tag
			}
			res.Indexes = append(res.Indexes, ir)
			if ir.Changed {
				res.TagsWritten = append(res.TagsWritten, ir.Tag)
			}
		}
	}
	res.BlobsSent, res.BytesSent, res.Credentials = t.stats()
	return res, nil
}

// checkLayerSizes refuses, before any request, a layer the registry is
// known to refuse: better now than after minutes of upload and five retries.
func checkLayerSizes(p *Plan, t target) error {
	limit, registry := t.layerLimit()
	if limit <= 0 {
		return nil
	}
	for _, m := range p.Manifests {
		for _, l := range m.Layers {
			if l.Size > limit {
				return fmt.Errorf("%s layer %s (%s) has %d bytes; %s refuses layers over %d bytes: %w (compress it with compression = \"zstd\" or \"gzip\", which ironcore-image cannot read, build a smaller disk, or push to another registry)",
					m.Arch+"/"+m.BootMode, l.Role, l.Source, l.Size, registry, limit, ErrTooLarge)
			}
		}
	}
	return nil
}

func preflight(ctx context.Context, p *Plan, t target) (map[string]firstRead, map[string]bool, error) {
	first := map[string]firstRead{}
	for _, it := range p.Indexes {
		cur, err := t.get(ctx, it.Tag)
		if errors.Is(err, ErrUnauthorized) {
			first[it.Tag] = firstRead{unknown: true}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		first[it.Tag] = firstRead{cur: cur}
		if _, _, err := Merge(t.ref(":"+it.Tag), cur, ownEntries(p, it), it.Annotations, p.Force); err != nil {
			return nil, nil, err
		}
	}
	skip := map[string]bool{}
	for _, at := range p.ArchTags {
		m := p.Manifests[at.Manifest]
		dg, err := t.head(ctx, at.Tag)
		if errors.Is(err, ErrUnauthorized) {
			continue // a new repository (see firstRead); the upload proves access
		}
		if err != nil {
			return nil, nil, err
		}
		switch dg {
		case "":
			continue
		case m.Digest.String():
			// Already there: an identical re-run writes no tag (which
			// a repository with immutable tags would refuse).
			skip[at.Tag] = true
			continue
		}
		cur, err := t.get(ctx, at.Tag)
		if err != nil {
			return nil, nil, err
		}
		if err := checkArchTag(t.ref(":"+at.Tag), cur, m, p.Force); err != nil {
			return nil, nil, err
		}
	}
	return first, skip, nil
}

// checkArchTag allows replacing what an arch tag holds only with a manifest
// of the same architecture and boot mode: another boot mode's manifest
// there means two builds' tag templates collide.
func checkArchTag(where string, cur Existing, m *Manifest, force bool) error {
	if !cur.Found {
		return nil
	}
	var have v1.Manifest
	if err := json.Unmarshal(cur.Raw, &have); err != nil || !mediaTypeOf(cur.MediaType).IsImage() && have.Config.MediaType == "" {
		if force {
			return nil
		}
		return fmt.Errorf("%s holds a %s, not an image manifest of osimage-oci: %w (set force to replace it)", where, nonEmpty(string(mediaTypeOf(cur.MediaType)), "document without a media type"), ErrForeignEntry)
	}
	bm, arch := have.Annotations[AnnotationBootMode], have.Annotations[AnnotationArch]
	switch {
	case bm == m.BootMode && arch == m.Arch:
		return nil
	case bm == "":
		if force {
			return nil
		}
		return fmt.Errorf("%s holds %s without a %s annotation (not written by osimage-oci): %w (set force to replace it)", where, digestOf(cur.Raw), AnnotationBootMode, ErrForeignEntry)
	}
	return fmt.Errorf("%s holds the %s/%s manifest %s of another build; this build's %s/%s manifest %s would replace it: %w (give the tag template .Variant or .Platform)",
		where, arch, bm, digestOf(cur.Raw), m.Arch, m.BootMode, m.Digest, ErrTagConflict)
}

// ownEntries are this build's entries of an index tag.
func ownEntries(p *Plan, it IndexTag) []v1.Descriptor {
	var add []v1.Descriptor
	for _, mi := range it.Manifests {
		add = append(add, descriptorFor(p.Manifests[mi], it))
	}
	return add
}

// mergeIndex merges this build's entries into one index tag. The base is
// what the tag holds (read again only when it changed since the first read,
// by a HEAD, which Docker Hub does not count as a pull), plus what this
// machine last wrote there (a registry may still serve an older version),
// plus the entries of the other builds' arch tags that the base lacks. A
// stale answer can so only delay another machine's entry until the next
// merge, never drop it. After the write, a HEAD that shows a third version
// (neither the one read nor ours) means another machine wrote meanwhile:
// merge again.
func mergeIndex(ctx context.Context, p *Plan, t target, it IndexTag, fr firstRead, rec *record, d Destination) (IndexResult, error) {
	attempts := d.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	where := t.ref(":" + it.Tag)
	add := ownEntries(p, it)
	cur, reread := fr.cur, fr.unknown
	for attempt := 1; ; attempt++ {
		if !reread {
			dg, err := t.head(ctx, it.Tag)
			if err != nil {
				return IndexResult{}, err
			}
			reread = dg != cur.digest()
		}
		if reread {
			var err error
			if cur, err = t.get(ctx, it.Tag); err != nil {
				return IndexResult{}, err
			}
		}
		old, err := parseIndex(where, cur)
		if err != nil {
			if !p.Force {
				return IndexResult{}, fmt.Errorf("%w (set force to replace it)", err)
			}
			if d.Logf != nil {
				d.Logf("%s: replacing it (force): %v", where, err)
			}
			old = nil
		}
		if recorded, stale := rec.entries(it.Tag, cur.digest()); recorded != nil {
			kept, err := stillThere(ctx, t, old, recorded.Manifests)
			if err != nil {
				return IndexResult{}, err
			}
			old = withEntries(old, kept, stale)
		}
		old, err = heal(ctx, t, it, old, add)
		if err != nil {
			return IndexResult{}, err
		}
		raw, idx, err := mergeEntries(where, old, add, it.Annotations, p.Force, it.First)
		if err != nil {
			return IndexResult{}, err
		}
		if len(idx.Manifests) == 0 {
			return IndexResult{}, nil
		}
		result := IndexResult{Tag: it.Tag, Ref: where, Digest: digestOf(raw).String(), Entries: len(idx.Manifests)}
		if cur.Found && bytes.Equal(raw, cur.Raw) {
			rec.set(it.Tag, raw, false)
			return result, nil
		}
		if err := t.putIndex(ctx, it.Tag, raw); err != nil {
			return IndexResult{}, err
		}
		rec.set(it.Tag, raw, true)
		result.Changed = true
		if d.hook != nil {
			d.hook(it.Tag)
		}
		if err := sleep(ctx, d.Settle); err != nil {
			return IndexResult{}, err
		}
		back, err := t.head(ctx, it.Tag)
		if err != nil {
			return IndexResult{}, err
		}
		if back == result.Digest || back == cur.digest() {
			// Ours, or the version we read (a registry still serving
			// it): nothing newer than our merge is known.
			return result, nil
		}
		if attempt >= attempts {
			return IndexResult{}, fmt.Errorf("%s: another writer replaced the index %d times after this build's write: %w (this build's entries stay in its arch tags; the next merge adds them)", where, attempt, ErrLostRace)
		}
		if d.Logf != nil {
			d.Logf("%s: another writer replaced the index; merging again (attempt %d of %d)", where, attempt+1, attempts)
		}
		wait := time.Duration(attempt)*100*time.Millisecond + rand.N(100*time.Millisecond)
		if err := sleep(ctx, wait); err != nil {
			return IndexResult{}, err
		}
		reread = true
	}
}

// stillThere keeps the recorded entries whose manifests the destination
// still has: one deleted since this machine recorded it must not come back
// (a registry refuses an index naming a manifest it lacks). Entries the
// index already holds cost no request.
func stillThere(ctx context.Context, t target, idx *v1.IndexManifest, recorded []v1.Descriptor) ([]v1.Descriptor, error) {
	in := map[v1.Hash]bool{}
	for _, d := range manifestsOf(idx) {
		in[d.Digest] = true
	}
	var out []v1.Descriptor
	for _, d := range recorded {
		if !in[d.Digest] {
			ok, err := t.hasManifest(ctx, d.Digest)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// heal adds the entries of the other builds' arch tags (it.Sources) that
// the index lacks. A HEAD per source; a GET only for a missing entry.
func heal(ctx context.Context, t target, it IndexTag, idx *v1.IndexManifest, add []v1.Descriptor) (*v1.IndexManifest, error) {
	have := map[entryKey]bool{}
	for _, ds := range [][]v1.Descriptor{add, manifestsOf(idx)} {
		for _, d := range ds {
			have[keyOf(d)] = true
		}
	}
	var found []v1.Descriptor
	for _, s := range it.Sources {
		if have[entryKey{"linux", s.Arch, s.BootMode}] {
			continue
		}
		dg, err := t.head(ctx, s.Tag)
		if err != nil {
			return nil, err
		}
		if dg == "" {
			continue
		}
		cur, err := t.get(ctx, s.Tag)
		if err != nil {
			return nil, err
		}
		if e := entryFromManifest(cur.Raw, s.Arch, s.BootMode, it); e != nil && cur.Found {
			found = append(found, *e)
		}
	}
	return withEntries(idx, found, false), nil
}

func manifestsOf(idx *v1.IndexManifest) []v1.Descriptor {
	if idx == nil {
		return nil
	}
	return idx.Manifests
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
// one machine merge into a destination one at a time. The default directory
// is the user's own (see defaultLockDir).
func lockFile(ctx context.Context, dir, key string) (func(), error) {
	dir, err := lockDirOr(dir)
	if err != nil {
		return nil, err
	}
	path := keyFile(dir, key, ".lock")
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
