package release

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Ref names one variant of one release in a store.
type Ref struct {
	Store   Store
	Release string
	Key     string
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// releaseDir is a release's directory in the store: <release>/.
func releaseDir(release string) string {
	rel := unsafeName.ReplaceAllString(release, "_")
	if rel == "" || rel == "." || rel == ".." {
		rel = "unversioned"
	}
	return rel + "/"
}

// dir is the variant's directory in the store: <release>/<key>/.
func (r Ref) dir() string {
	return releaseDir(r.Release) + unsafeName.ReplaceAllString(r.Key, "_") + "/"
}

// Name is the document name of a revision.
func (r Ref) Name(revision int) string { return r.dir() + "r" + strconv.Itoa(revision) + ".json" }

func (r Ref) String() string {
	return fmt.Sprintf("variant %s of release %s in %s", r.Key, r.Release, r.Store)
}

// Revisions lists the revisions that have a document, ascending.
func Revisions(ctx context.Context, r Ref) ([]int, error) {
	names, err := r.Store.List(ctx, r.dir())
	if err != nil {
		return nil, err
	}
	var revs []int
	for _, n := range names {
		base := strings.TrimPrefix(n, r.dir())
		num, ok := strings.CutPrefix(strings.TrimSuffix(base, ".json"), "r")
		if !ok || !strings.HasSuffix(base, ".json") || strings.Contains(base, "/") {
			continue
		}
		if v, err := strconv.Atoi(num); err == nil && v >= 0 && strconv.Itoa(v) == num {
			revs = append(revs, v)
		}
	}
	slices.Sort(revs)
	return revs, nil
}

// Current is what a run works on: the revision and its document (nil
// when the revision has none yet).
type Current struct {
	Revision int
	Doc      *Doc
	Version  string // the document's store version, for Put
	// Latest is the highest revision in the store, -1 when none.
	Latest int
}

// Select picks the revision a run works on: want < 0 means the highest in
// the store (0 when there is none); otherwise want must be the highest, or
// the one after it (a new revision), or anything for a variant without
// documents (new to the release). Documents are checked to belong to
// the variant (key and image).
func Select(ctx context.Context, r Ref, image string, want int) (*Current, error) {
	revs, err := Revisions(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	c := &Current{Latest: -1}
	if len(revs) > 0 {
		c.Latest = revs[len(revs)-1]
	}
	switch {
	case want < 0:
		c.Revision = max(c.Latest, 0)
	case want == c.Latest, want == c.Latest+1, c.Latest < 0:
		// The current revision, the next one, or the first one of a
		// variant new to the release (any number, as the release asks).
		c.Revision = want
	case want < c.Latest:
		return nil, fmt.Errorf("%s: revision %d is older than the current r%d; ask for r%d (current) or r%d (a new revision)", r, want, c.Latest, c.Latest, c.Latest+1)
	default:
		return nil, fmt.Errorf("%s: revision %d does not exist; ask for r%d (current) or r%d (a new revision)", r, want, c.Latest, c.Latest+1)
	}
	if c.Revision > c.Latest {
		return c, nil
	}
	data, version, err := r.Store.Get(ctx, r.Name(c.Revision))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	d, err := Parse(r.Store.String()+"/"+r.Name(c.Revision), data)
	if err != nil {
		return nil, err
	}
	if d.Key != r.Key || (image != "" && d.Image != image) || d.Revision != c.Revision {
		return nil, fmt.Errorf("state document %s/%s belongs to variant %s (image %s) revision %d, not to variant %s (image %s) revision %d",
			r.Store, r.Name(c.Revision), d.Key, d.Image, d.Revision, r.Key, image, c.Revision)
	}
	c.Doc, c.Version = d, version
	return c, nil
}

// maxAttempts bounds Update's compare-and-swap retries.
const maxAttempts = 8

// Update reads the document of a revision (a copy of init's when there is
// none), applies fn and writes it back whole and conditionally, again from
// a fresh read when another writer got there first. fn may run more than
// once and must only change the document.
func Update(ctx context.Context, r Ref, revision int, init Doc, fn func(*Doc) error) (*Doc, error) {
	name := r.Name(revision)
	for attempt := 1; ; attempt++ {
		data, version, err := r.Store.Get(ctx, name)
		var d *Doc
		switch {
		case errors.Is(err, ErrNotFound):
			c := init
			c.Schema, c.Key, c.Release, c.Revision = Schema, r.Key, r.Release, revision
			d, version = &c, ""
		case err != nil:
			return nil, fmt.Errorf("%s: %w", r, err)
		default:
			if d, err = Parse(r.Store.String()+"/"+name, data); err != nil {
				return nil, err
			}
		}
		if err := fn(d); err != nil {
			return nil, err
		}
		d.Updated = time.Now().UTC().Truncate(time.Second)
		err = r.Store.Put(ctx, name, d.Marshal(), version)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, ErrConflict) || attempt == maxAttempts {
			return nil, fmt.Errorf("%s: record: %w", r, err)
		}
	}
}

// Latest returns the highest revision's document of every variant of a
// release in the store, sorted by key.
func Latest(ctx context.Context, s Store, release string) ([]*Doc, error) {
	prefix := releaseDir(release)
	names, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for _, n := range names {
		if parts := strings.Split(strings.TrimPrefix(n, prefix), "/"); len(parts) == 2 {
			keys[parts[0]] = true
		}
	}
	var out []*Doc
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		c, err := Select(ctx, Ref{Store: s, Release: release, Key: k}, "", -1)
		if err != nil {
			return nil, err
		}
		if c.Doc != nil {
			out = append(out, c.Doc)
		}
	}
	return out, nil
}

// Subject is a variant as Plan sees it.
type Subject struct {
	Key, Image, Release string
	Targets             []string // the names of its publish targets
}

// Status is what Plan found for one variant.
type Status struct {
	Revision int
	Name     string   // Alpine's image name with the revision
	Pending  []string // the steps of the stage not done yet
	Doc      *Doc     // nil when the revision has no document yet
}

// planWorkers bounds the store requests Plan has in flight.
const planWorkers = 8

// Plan selects each variant's revision in the store (revision < 0: the
// current one) and says which steps of stage are pending for it, with up to
// planWorkers store requests at a time. The first error (in subject order)
// is returned.
func Plan(ctx context.Context, s Store, stage string, revision int, subjects []Subject) ([]Status, error) {
	if _, err := Pending(nil, stage, nil); err != nil {
		return nil, err
	}
	out := make([]Status, len(subjects))
	errs := make([]error, len(subjects))
	sem := make(chan struct{}, planWorkers)
	var wg sync.WaitGroup
	for i, sub := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := Select(ctx, Ref{Store: s, Release: sub.Release, Key: sub.Key}, sub.Image, revision)
			if err != nil {
				errs[i] = err
				return
			}
			p, _ := Pending(c.Doc, stage, sub.Targets)
			out[i] = Status{Revision: c.Revision, Name: ImageName(sub.Image, sub.Key, sub.Release, c.Revision), Pending: p, Doc: c.Doc}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Recorder binds one variant (and the revision the run works on) to its
// state document, for the components.
type Recorder struct {
	Ref      Ref
	Revision int
	init     Doc
}

// RecorderFor opens the store a variant carries; nil (and no error) when
// it carries none.
func RecorderFor(v *variant.Variant) (*Recorder, error) {
	if v.State == "" {
		return nil, nil
	}
	s, err := Open(v.State)
	if err != nil {
		return nil, err
	}
	rel := v.ReleaseVersion()
	name := v.ReleaseName
	if name == "" {
		name = ImageName(v.Image, v.Key, rel, v.Revision)
	}
	return &Recorder{
		Ref:      Ref{Store: s, Release: rel, Key: v.Key},
		Revision: v.Revision,
		init: Doc{Image: v.Image, Name: name, Arch: v.Arch, Platform: v.Platform, Firmware: v.Firmware,
			HyperVGeneration: v.HyperVGeneration},
	}, nil
}

func (r *Recorder) String() string { return fmt.Sprintf("%s, r%d", r.Ref, r.Revision) }

// Load returns the document, nil when the revision has none yet.
func (r *Recorder) Load(ctx context.Context) (*Doc, error) {
	data, _, err := r.Ref.Store.Get(ctx, r.Ref.Name(r.Revision))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r, err)
	}
	return Parse(r.Ref.Store.String()+"/"+r.Ref.Name(r.Revision), data)
}

// CheckBuild refuses to build a revision that is published anywhere: its
// names and versions are out, so a new disk needs a new revision.
func (r *Recorder) CheckBuild(ctx context.Context) error {
	d, err := r.Load(ctx)
	if err != nil || d == nil {
		return err
	}
	var out []string
	for _, t := range d.Targets {
		if t.Published != nil {
			out = append(out, t.Name)
		}
	}
	if len(out) > 0 {
		return fmt.Errorf("%s is published (%s): a rebuild needs a new revision, revision = %d in osimage-matrix", r, strings.Join(out, ", "), r.Revision+1)
	}
	return nil
}

// Update applies fn to the document (made when missing) and writes it.
func (r *Recorder) Update(ctx context.Context, fn func(*Doc) error) (*Doc, error) {
	return Update(ctx, r.Ref, r.Revision, r.init, fn)
}

// Built records a build: its files and the time. Records of targets stay:
// a rebuild of an unpublished revision keeps what was uploaded, which the
// publishers check against the new files.
func (r *Recorder) Built(ctx context.Context, files []File, at time.Time) (*Doc, error) {
	return r.Update(ctx, func(d *Doc) error {
		at := at.UTC().Truncate(time.Second)
		d.Built, d.Files = &at, files
		return nil
	})
}
