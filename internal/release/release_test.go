package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

var ctx = context.Background()

func ts(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestPendingFollowsTheStageTheTargetsAndWhatIsDone(t *testing.T) {
	both := []string{"acg", "reg"}
	built := &Doc{Built: ts("2026-12-01T00:00:00Z")}
	pubOne := &Doc{Built: built.Built, Targets: []Target{{Name: "acg", Published: ts("2026-12-02T00:00:00Z")}}}
	pubAll := &Doc{Built: built.Built, Targets: []Target{{Name: "acg", Published: ts("2026-12-02T00:00:00Z")}, {Name: "reg", Published: ts("2026-12-02T00:00:00Z")}}}
	relOne := &Doc{Built: built.Built, Targets: []Target{{Name: "acg", Published: ts("2026-12-02T00:00:00Z"), Released: ts("2026-12-03T00:00:00Z")}, {Name: "reg", Published: ts("2026-12-02T00:00:00Z")}}}
	relAll := &Doc{Built: built.Built, Targets: []Target{{Name: "acg", Published: ts("2026-12-02T00:00:00Z"), Released: ts("2026-12-03T00:00:00Z")}, {Name: "reg", Published: ts("2026-12-02T00:00:00Z"), Released: ts("2026-12-03T00:00:00Z")}}}
	for _, tc := range []struct {
		name    string
		doc     *Doc
		stage   string
		targets []string
		want    []string
	}{
		{"nothing done, build", nil, StepBuild, both, []string{"build"}},
		{"nothing done, publish", nil, StepPublish, both, []string{"build", "publish"}},
		{"nothing done, release", nil, StepRelease, both, []string{"build", "publish", "release"}},
		{"no targets: nothing to publish", nil, StepRelease, nil, []string{"build"}},
		{"built", built, StepRelease, both, []string{"publish", "release"}},
		{"one of two targets published", pubOne, StepPublish, both, []string{"publish"}},
		{"published", pubAll, StepPublish, both, []string{}},
		{"published, release asked", pubAll, StepRelease, both, []string{"release"}},
		{"one of two released", relOne, StepRelease, both, []string{"release"}},
		{"released", relAll, StepRelease, both, []string{}},
		{"a target the doc does not know", relAll, StepRelease, []string{"acg", "new"}, []string{"publish", "release"}},
	} {
		got, err := Pending(tc.doc, tc.stage, tc.targets)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := Pending(nil, "deploy", nil); err == nil || !strings.Contains(err.Error(), "build, publish, release") {
		t.Errorf("unknown stage: %v", err)
	}
}

func TestImageNameIsAlpines(t *testing.T) {
	for _, tc := range []struct {
		image, key, release string
		rev                 int
		want                string
	}{
		{"edge", "edge-x86_64-virtualization", "1.0", 0, "edge-1.0-x86_64-virtualization-r0"},
		{"vm-base", "vm-base-aarch64-virtualization-gen2", "4.0", 3, "vm-base-4.0-aarch64-virtualization-gen2-r3"},
		{"", "disk", "", 1, "disk-r1"},
		{"other", "disk", "2", 0, "disk-2-r0"},
	} {
		if got := ImageName(tc.image, tc.key, tc.release, tc.rev); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
}

func TestBadDocumentsAreNamed(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"{", "does not parse"},
		{`{"schema":1,"key":"k","revision":0,"extra":1}`, `unknown field "extra"`},
		{`{"schema":2,"key":"k","revision":0}`, "schema 2; this plugin reads schema 1"},
		{`{"schema":1,"revision":0}`, `key ""`},
		{`{"schema":1,"key":"k","revision":-1}`, "revision -1"},
	} {
		if _, err := Parse("store/x.json", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "store/x.json") {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
	d := &Doc{Schema: Schema, Key: "k", Built: ts("2026-12-01T00:00:00Z"), Targets: []Target{{Name: "t", OCI: &OCI{Repository: "r"}}}}
	back, err := Parse("x", d.Marshal())
	if err != nil || back.Key != "k" || back.Targets[0].OCI.Repository != "r" || !back.Built.Equal(*d.Built) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

// storeContract runs the same checks on every Store.
func storeContract(t *testing.T, s Store) {
	t.Helper()
	if _, _, err := s.Get(ctx, "1.0/k/r0.json"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing document: %v", err)
	}
	if err := s.Put(ctx, "1.0/k/r0.json", []byte("one"), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "1.0/k/r0.json", []byte("two"), ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second create: %v", err)
	}
	b, v1, err := s.Get(ctx, "1.0/k/r0.json")
	if err != nil || string(b) != "one" || v1 == "" {
		t.Fatalf("Get: %q %q %v", b, v1, err)
	}
	if err := s.Put(ctx, "1.0/k/r0.json", []byte("two"), v1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "1.0/k/r0.json", []byte("three"), v1); !errors.Is(err, ErrConflict) {
		t.Fatalf("a write from a stale read: %v", err)
	}
	if b, _, _ := s.Get(ctx, "1.0/k/r0.json"); string(b) != "two" {
		t.Fatalf("the stale write changed the document: %q", b)
	}
	s.Put(ctx, "1.0/k/r1.json", []byte("r1"), "")
	s.Put(ctx, "1.0/other/r0.json", []byte("x"), "")
	s.Put(ctx, "2.0/k/r0.json", []byte("x"), "")
	if got, err := s.List(ctx, "1.0/k/"); err != nil || !slices.Equal(got, []string{"1.0/k/r0.json", "1.0/k/r1.json"}) {
		t.Fatalf("List: %v %v", got, err)
	}
	if got, _ := s.List(ctx, "3.0/"); len(got) != 0 {
		t.Fatalf("List of nothing: %v", got)
	}

	// Many writers updating one document: each record survives.
	ref := Ref{Store: s, Release: "1.0", Key: "shared"}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Update(ctx, ref, 0, Doc{Image: "img"}, func(d *Doc) error {
				d.Target(fmt.Sprintf("t%d", i), "oci-registry").Published = ts("2026-12-02T00:00:00Z")
				return nil
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := Select(ctx, ref, "img", -1)
	if err != nil || c.Doc == nil || len(c.Doc.Targets) != 6 || c.Doc.Image != "img" || c.Doc.Release != "1.0" {
		t.Fatalf("after 6 concurrent updates: %+v %v", c, err)
	}
}

func TestDirStoreKeepsItsContractAndWritesWhole(t *testing.T) {
	root := t.TempDir()
	storeContract(t, Dir{Root: root})
	for _, bad := range []string{"../x.json", "/abs.json", "a/../b.json", "a\\b.json", ""} {
		if err := (Dir{Root: root}).Put(ctx, bad, nil, ""); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	var left []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if strings.Contains(filepath.Base(p), ".tmp-") {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestSelectPicksTheRevisionAndRefusesWhatDoesNotExist(t *testing.T) {
	s := Dir{Root: t.TempDir()}
	r := Ref{Store: s, Release: "1.0", Key: "k"}
	c, err := Select(ctx, r, "img", -1)
	if err != nil || c.Revision != 0 || c.Doc != nil || c.Latest != -1 {
		t.Fatalf("empty store: %+v %v", c, err)
	}
	if c, err := Select(ctx, r, "img", 3); err != nil || c.Revision != 3 || c.Doc != nil {
		t.Fatalf("a variant new to the release starts at the revision asked: %+v %v", c, err)
	}
	for rev := range 2 {
		if _, err := Update(ctx, r, rev, Doc{Image: "img"}, func(d *Doc) error { d.Built = ts("2026-12-01T00:00:00Z"); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := Select(ctx, r, "img", -1); err != nil || c.Revision != 1 || c.Doc == nil || c.Latest != 1 {
		t.Fatalf("current: %+v %v", c, err)
	}
	if c, err := Select(ctx, r, "img", 2); err != nil || c.Revision != 2 || c.Doc != nil {
		t.Fatalf("a new revision: %+v %v", c, err)
	}
	for want, msg := range map[int]string{0: "revision 0 is older than the current r1; ask for r1 (current) or r2 (a new revision)", 5: "revision 5 does not exist; ask for r1 (current) or r2 (a new revision)"} {
		if _, err := Select(ctx, r, "img", want); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "variant k of release 1.0 in "+s.Root) {
			t.Errorf("revision %d: %v", want, err)
		}
	}
	if _, err := Select(ctx, r, "another-image", -1); err == nil || !strings.Contains(err.Error(), "belongs to variant k (image img)") {
		t.Fatalf("a document of another image: %v", err)
	}
	os.WriteFile(filepath.Join(s.Root, "1.0", "k", "r1.json"), []byte("{not json"), 0o644)
	if _, err := Select(ctx, r, "img", -1); err == nil || !strings.Contains(err.Error(), filepath.Join(s.Root, "1.0/k/r1.json")) || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("a corrupt document: %v", err)
	}
}

// racyStore changes the document between Update's read and write once.
type racyStore struct {
	Dir
	armed bool
	once  sync.Once
}

func (r *racyStore) Put(ctx context.Context, name string, data []byte, version string) error {
	if !r.armed {
		return r.Dir.Put(ctx, name, data, version)
	}
	r.once.Do(func() {
		b, v, _ := r.Dir.Get(ctx, name)
		d, _ := Parse("x", b)
		d.Target("other", "oci-registry")
		r.Dir.Put(ctx, name, d.Marshal(), v)
	})
	return r.Dir.Put(ctx, name, data, version)
}

func TestUpdateRetriesFromAFreshReadAfterAConflict(t *testing.T) {
	s := &racyStore{Dir: Dir{Root: t.TempDir()}}
	r := Ref{Store: s, Release: "1.0", Key: "k"}
	if _, err := Update(ctx, r, 0, Doc{}, func(d *Doc) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s.armed = true // another writer gets in before the next Put
	calls := 0
	d, err := Update(ctx, r, 0, Doc{}, func(d *Doc) error {
		calls++
		d.Target("mine", "azure-compute-gallery")
		return nil
	})
	if err != nil || calls != 2 || len(d.Targets) != 2 {
		t.Fatalf("calls %d, targets %+v, %v: want a retry keeping both records", calls, d, err)
	}
	if _, err := Update(ctx, r, 0, Doc{}, func(d *Doc) error { return errors.New("refused") }); err == nil || err.Error() != "refused" {
		t.Fatalf("fn's error: %v", err)
	}
}

func TestManifestListsEveryVariantsLatestRevision(t *testing.T) {
	s := Dir{Root: t.TempDir()}
	for _, k := range []string{"b", "a"} {
		for rev := range 2 {
			Update(ctx, Ref{Store: s, Release: "1.0", Key: k}, rev, Doc{Image: "img", Name: ImageName("img", k, "1.0", rev)}, func(d *Doc) error {
				d.Built = ts("2026-12-01T10:00:00Z")
				d.Files = []File{{Role: "disk", Name: k + ".raw", SHA256: "ab"}}
				tg := d.Target("acg", "azure-compute-gallery")
				tg.Blob = &Blob{URL: "https://a.blob.core.windows.net/c/" + k + ".vhd", MD5: "md5=="}
				tg.Versions = []GalleryVersion{{ID: "/v/" + k, Generation: "V2", Regions: []string{"eastus"}, ExcludeFromLatest: true}}
				tg.Published = ts("2026-12-01T11:00:00Z")
				r := d.Target("reg", "oci-registry")
				r.OCI = &OCI{Repository: "ghcr.io/o/img", Manifests: []OCIManifest{{Arch: "amd64", Platform: "virtualization", Digest: "sha256:m"}},
					Indexes: []Index{{Tag: "1.0-kvm", Digest: "sha256:i"}}, MovingTags: []string{"latest-kvm"}}
				return nil
			})
		}
	}
	Update(ctx, Ref{Store: s, Release: "2.0", Key: "c"}, 0, Doc{}, func(d *Doc) error { return nil })
	Update(ctx, Ref{Store: s, Release: "1.0", Key: "only-r0"}, 0, Doc{}, func(d *Doc) error { return nil })
	docs, err := Latest(ctx, s, "1.0")
	if err != nil || len(docs) != 3 || docs[0].Key != "a" || docs[0].Revision != 1 || docs[1].Key != "b" || docs[2].Key != "only-r0" || docs[2].Revision != 0 {
		t.Fatalf("latest: %v %v", docs, err)
	}
	m := &Manifest{Release: "1.0", Store: s.String(), Created: *ts("2026-12-02T00:00:00Z"), Variants: docs}
	var back Manifest
	if err := jsonUnmarshal(m.JSON(), &back); err != nil || len(back.Variants) != 3 || back.Variants[1].Targets[1].OCI.Indexes[0].Digest != "sha256:i" {
		t.Fatalf("manifest JSON: %v %+v", err, back)
	}
	md := m.Markdown()
	for _, want := range []string{"# Release 1.0", "| a | a-1.0-r1 | 2026-12-01 10:00 | 2026-12-01 11:00 | - |",
		"blob https://a.blob.core.windows.net/c/b.vhd (Content-MD5 `md5==`)", "gallery version `/v/a` (V2, excluded from latest; regions eastus)",
		"index ghcr.io/o/img:1.0-kvm@sha256:i", "moving tags latest-kvm", "disk `a.raw` sha256 `ab`"} {
		if !strings.Contains(md, want) {
			t.Errorf("notes lack %q:\n%s", want, md)
		}
	}
}

func TestOpenTellsStoresApart(t *testing.T) {
	dir := t.TempDir()
	for _, spec := range []string{dir, "file://" + dir} {
		if s, err := Open(spec); err != nil || s.(Dir).Root != dir {
			t.Errorf("%s: %v %v", spec, s, err)
		}
	}
	if _, err := Open(""); err == nil {
		t.Error("empty spec accepted")
	}
	if _, err := Open("oci://ghcr.io/o/state"); err == nil || !strings.Contains(err.Error(), "not supported yet") {
		t.Errorf("oci: %v", err)
	}
	if _, err := Open("https://acct.blob.core.windows.net"); err == nil || !strings.Contains(err.Error(), "want a blob container URL") {
		t.Errorf("a URL without container: %v", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func TestIncompleteNamesWhatEachVariantLacks(t *testing.T) {
	now := ts("2026-12-01T00:00:00Z")
	docs := []*Doc{
		{Key: "a", Built: now, Targets: []Target{{Name: "reg", Published: now, Released: now}}},
		{Key: "b", Revision: 2, Built: now, Targets: []Target{{Name: "reg", Published: now}}},
		{Key: "c"},
	}
	got := Incomplete(docs, []string{"a", "b", "c", "d"}, map[string][]string{"a": {"reg", "acg"}}, StepRelease)
	want := []string{"a (r0): publish, release pending", "b (r2): release pending", "c (r0): build pending", "d: no state document"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := Incomplete(docs[:2], nil, nil, StepPublish); len(got) != 0 {
		t.Fatalf("publish stage: %q", got)
	}
}

func TestRedactErrDropsTheQueryOfEveryURLInAMessage(t *testing.T) {
	err := redactErr(errors.New(`GET https://a.blob.core.windows.net/c/x.json?sv=1&sig=c2VjcmV0 failed; retry http://h/p?se=2&sig=b3RoZXI= too ?keep`))
	msg := err.Error()
	for _, bad := range []string{"sig=", "c2VjcmV0", "b3RoZXI"} {
		if strings.Contains(msg, bad) {
			t.Errorf("%q left in %q", bad, msg)
		}
	}
	if msg != "GET https://a.blob.core.windows.net/c/x.json?REDACTED failed; retry http://h/p?REDACTED too ?keep" {
		t.Errorf("redacted: %q", msg)
	}
	if redactErr(nil) != nil {
		t.Error("nil error")
	}
}

// alwaysConflict answers every write with ErrConflict.
type alwaysConflict struct{ Dir }

func (alwaysConflict) Put(context.Context, string, []byte, string) error { return ErrConflict }

func TestUpdateGivesUpAfterMaxAttemptsOfConflicts(t *testing.T) {
	calls := 0
	_, err := Update(ctx, Ref{Store: alwaysConflict{Dir{Root: t.TempDir()}}, Release: "1", Key: "k"}, 0, Doc{}, func(*Doc) error { calls++; return nil })
	if !errors.Is(err, ErrConflict) || calls != maxAttempts {
		t.Fatalf("%d attempts, %v; want %d and ErrConflict", calls, err, maxAttempts)
	}
}

func TestNotesShowTheLatestTimesAndOnlyTheTagsThatExist(t *testing.T) {
	d := &Doc{Key: "k", Name: "k-r0", Built: ts("2026-12-01T10:00:00Z"), Targets: []Target{
		{Name: "a", Published: ts("2026-12-02T10:00:00Z"), Released: ts("2026-12-05T10:00:00Z"), OCI: &OCI{Repository: "r"}},
		{Name: "b", Published: ts("2026-12-03T10:00:00Z"), Released: ts("2026-12-04T10:00:00Z")},
	}}
	md := (&Manifest{Release: "1", Variants: []*Doc{d}}).Markdown()
	if !strings.Contains(md, "| k | k-r0 | 2026-12-01 10:00 | 2026-12-03 10:00 | 2026-12-05 10:00 |") {
		t.Errorf("the table shows the latest publish and release:\n%s", md)
	}
	if strings.Contains(md, "moving tags") {
		t.Errorf("no moving tags were written:\n%s", md)
	}
}

func TestFindLocalUsesOnlyFilesThatMatchTheRecord(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.raw"), []byte("abc"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.raw"), []byte("abd"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.raw"), []byte("abcd"), 0o644)
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // sha256("abc")
	d := &Doc{Files: []File{
		{Role: "disk", Name: "a.raw", Size: 3, SHA256: abc},
		{Role: "kernel", Name: "b.raw", Size: 3, SHA256: abc},
		{Role: "initrd", Name: "c.raw", Size: 3, SHA256: abc},
		{Role: "rootfs", Name: "gone.raw", Size: 3},
		{Role: "sbom", Name: "c.raw"}, // no size or sum recorded: found is enough
	}}
	got := FindLocal(ctx, d, dir, true)
	want := []struct{ path, why string }{
		{filepath.Join(dir, "a.raw"), ""},
		{"", "b.raw has sha256 "},
		{"", "c.raw has 4 bytes, the build recorded 3"},
		{"", "not in " + dir},
		{filepath.Join(dir, "c.raw"), ""},
	}
	for i, w := range want {
		if got[i].Path != w.path || !strings.Contains(got[i].Why, w.why) || (w.why == "") != (got[i].Why == "") {
			t.Errorf("file %d: %+v, want path %q, why %q", i, got[i], w.path, w.why)
		}
	}
	if got := FindLocal(ctx, d, dir, false); got[1].Path == "" {
		t.Errorf("without verify, a file of the recorded size is used: %+v", got[1])
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if got := FindLocal(cancelled, d, dir, true); got[0].Path != "" {
		t.Errorf("a cancelled check uses nothing: %+v", got[0])
	}
}

func TestARecorderRecordsBuildsAndRefusesToRebuildAPublishedRevision(t *testing.T) {
	store := t.TempDir()
	v := &variant.Variant{Key: "edge-x86_64", Image: "edge", Arch: "x86_64", Platform: "virtualization", ReleaseVer: "1.0", State: store, Revision: 2}
	r, err := RecorderFor(v)
	if err != nil || r.Revision != 2 || r.Ref.Release != "1.0" || r.String() != "variant edge-x86_64 of release 1.0 in "+store+", r2" {
		t.Fatalf("%+v %v", r, err)
	}
	if none, err := RecorderFor(&variant.Variant{Key: "k"}); none != nil || err != nil {
		t.Fatalf("no state: %v %v", none, err)
	}
	if d, err := r.Load(ctx); d != nil || err != nil {
		t.Fatalf("nothing recorded: %v %v", d, err)
	}
	if err := r.CheckBuild(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 500, time.UTC)
	d, err := r.Built(ctx, []File{{Role: "disk", Name: "d.raw"}}, at)
	if err != nil || !d.Built.Equal(at.Truncate(time.Second)) || d.Name != "edge-1.0-x86_64-r2" || d.Platform != "virtualization" || d.Revision != 2 {
		t.Fatalf("built: %+v %v", d, err)
	}
	if err := r.CheckBuild(ctx); err != nil {
		t.Fatalf("built, not published: a rebuild is allowed: %v", err)
	}
	r.Update(ctx, func(d *Doc) error { d.Target("reg", "oci-registry").Published = ts("2026-12-02T00:00:00Z"); return nil })
	if err := r.CheckBuild(ctx); err == nil || !strings.Contains(err.Error(), "is published (reg): a rebuild needs a new revision, revision = 3") {
		t.Fatalf("published: %v", err)
	}
	if _, err := RecorderFor(&variant.Variant{Key: "k", State: "oci://x"}); err == nil {
		t.Fatal("an unsupported store")
	}
}
