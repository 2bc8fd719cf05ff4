package ociimage

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
)

func TestTheRecordTellsAStaleAnswerFromAnotherWritersIndex(t *testing.T) {
	dir := t.TempDir()
	r, err := loadRecord(dir, "registry:r.io/x")
	if err != nil {
		t.Fatal(err)
	}
	if idx, stale := r.entries("t", ""); idx != nil || stale {
		t.Fatalf("empty record: %v %v", idx, stale)
	}
	one, _, _ := Merge("x", Existing{}, []v1.Descriptor{desc("amd64", Virtualization, "a")}, nil, false)
	two, _, _ := Merge("x", Existing{}, []v1.Descriptor{desc("amd64", Virtualization, "a"), desc("arm64", Virtualization, "b")}, nil, false)
	r.set("t", one, true)
	r.set("t", two, true)
	d1, d2 := digestOf(one).String(), digestOf(two).String()
	for served, want := range map[string]bool{
		"":                  true,  // nothing, though this machine wrote: stale
		d1:                  true,  // an older write of ours: stale
		d2:                  false, // our last write
		"sha256:" + d1[10:]: false, // someone else's index
	} {
		idx, stale := r.entries("t", served)
		if idx == nil || len(idx.Manifests) != 2 || stale != want {
			t.Errorf("served %q: %d entries, stale %v; want 2, %v", served, len(manifestsOf(idx)), stale, want)
		}
	}
	// Saved and loaded again: the same; an index found (not written) does
	// not enter the history.
	r.set("u", one, false)
	if err := r.save(); err != nil {
		t.Fatal(err)
	}
	back, err := loadRecord(dir, "registry:r.io/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, stale := back.entries("t", d1); !stale || len(back.Tags["u"].Written) != 0 || len(back.Tags["t"].Written) != 2 {
		t.Fatalf("loaded record %+v", back.Tags)
	}
	// A tag this machine only found written (never wrote) is never stale.
	if idx, stale := back.entries("u", ""); idx == nil || stale {
		t.Fatalf("found, not written: %v %v", idx, stale)
	}
	// Writing an index again moves it to the end of the history, which
	// keeps the last recordHistory writes.
	r.set("t", one, true)
	if w := r.Tags["t"].Written; len(w) != 2 || w[1] != d1 {
		t.Fatalf("history %v", w)
	}
	for i := 0; i < recordHistory+5; i++ {
		raw, _, _ := Merge("x", Existing{}, []v1.Descriptor{desc("amd64", Virtualization, strconv.Itoa(i))}, nil, false)
		r.set("t", raw, true)
	}
	if n := len(r.Tags["t"].Written); n != recordHistory {
		t.Fatalf("history holds %d digests, want %d", n, recordHistory)
	}
	// A damaged record is an empty one: the registry and the arch tags
	// still hold every entry.
	if err := os.WriteFile(r.path, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if bad, err := loadRecord(dir, "registry:r.io/x"); err != nil || len(bad.Tags) != 0 {
		t.Fatalf("damaged record: %v %+v", err, bad)
	}
}

func TestWithEntriesAddsMissingKeysAndOverridesOnlyWhenAsked(t *testing.T) {
	idx := &v1.IndexManifest{SchemaVersion: 2, Annotations: map[string]string{"k": "v"}, Manifests: []v1.Descriptor{
		desc("amd64", Virtualization, "old"), desc("riscv64", "", "foreign")}}
	extra := []v1.Descriptor{desc("amd64", Virtualization, "new"), desc("arm64", Baremetal, "b")}
	got := entries2(withEntries(idx, extra, false))
	want := []string{"virtualization/amd64=" + short("old"), "/riscv64=" + short("foreign"), "baremetal/arm64=" + short("b")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("fill: %v, want %v", got, want)
	}
	got = entries2(withEntries(idx, extra, true))
	want[0] = "virtualization/amd64=" + short("new")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("override: %v, want %v", got, want)
	}
	if withEntries(idx, nil, true) != idx || withEntries(idx, extra, false).Annotations["k"] != "v" || len(idx.Manifests) != 2 {
		t.Fatal("withEntries changed its input or lost the annotations")
	}
	if got := entries2(withEntries(nil, extra, false)); len(got) != 2 {
		t.Fatalf("into nothing: %v", got)
	}
}

func TestAnEntryIsBuiltOnlyFromAManifestOfTheExpectedArchAndBootMode(t *testing.T) {
	fx := makeEntries(t, 1024)
	p := mustPlan(t, fx.entries, testOptions())
	m := manifestOf(p, "arm64", Baremetal)
	d := entryFromManifest(m.Raw, "arm64", Baremetal, IndexTag{})
	if d == nil || d.Digest != m.Digest || d.Size != int64(len(m.Raw)) || d.Platform.Variant != "" || d.Annotations[AnnotationBootMode] != Baremetal ||
		d.Annotations[AnnotationRevision] != "abc123" || d.Annotations[AnnotationSpecVariant] != "" || d.Annotations[AnnotationTitle] != "" {
		t.Fatalf("entry %+v", d)
	}
	if want := m.Descriptor; d.MediaType != want.MediaType || len(d.Annotations) != len(want.Annotations) {
		t.Fatalf("entry %+v differs from the planned descriptor %+v", d, want)
	}
	if d := entryFromManifest(m.Raw, "arm64", Baremetal, IndexTag{PlatformVariant: true}); d.Platform.Variant != Baremetal {
		t.Fatalf("platform variant: %+v", d.Platform)
	}
	for name, c := range map[string]struct {
		raw            []byte
		arch, bootMode string
	}{
		"other boot mode": {m.Raw, "arm64", Virtualization},
		"other arch":      {m.Raw, "amd64", Baremetal},
		"not json":        {[]byte("{"), "arm64", Baremetal},
		"foreign config":  {[]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"annotations":{"io.ironcore.image.variant":"baremetal","io.ironcore.image.architecture":"arm64"}}`), "arm64", Baremetal},
		"schema 1":        {[]byte(`{"schemaVersion":1,"config":{"mediaType":"` + MediaTypeConfig + `"},"annotations":{"io.ironcore.image.variant":"baremetal","io.ironcore.image.architecture":"arm64"}}`), "arm64", Baremetal},
	} {
		if d := entryFromManifest(c.raw, c.arch, c.bootMode, IndexTag{}); d != nil {
			t.Errorf("%s: entry %+v", name, d)
		}
	}
}

func TestRetryAfterReadsSecondsOrADateAndIsBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"-5":                            0,
		"soon":                          0,
		"86400":                         maxRetryAfter,
		"Tue, 01 Dec 2026 12:00:30 GMT": 30 * time.Second,
		"Tue, 01 Dec 2026 11:00:00 GMT": 0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", h, got, want)
		}
	}
}

func TestARefusedOverwriteIsToldFromOtherRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		te   transport.Error
		want bool
	}{
		"ECR":          {transport.Error{StatusCode: 400, Errors: []transport.Diagnostic{{Code: "TAG_INVALID", Message: "The image tag '1' already exists in the 'x' repository and cannot be overwritten because the repository is immutable."}}}, true},
		"Harbor":       {transport.Error{StatusCode: http.StatusPreconditionFailed}, true},
		"code":         {transport.Error{StatusCode: 409, Errors: []transport.Diagnostic{{Code: "TAG_IMMUTABLE"}}}, true},
		"bad manifest": {transport.Error{StatusCode: 400, Errors: []transport.Diagnostic{{Code: "MANIFEST_INVALID", Message: "manifest invalid"}}}, false},
		"denied":       {transport.Error{StatusCode: 403, Errors: []transport.Diagnostic{{Code: "DENIED", Message: "requested access to the resource is denied"}}}, false},
	} {
		if got := isImmutableRefusal(&c.te); got != c.want {
			t.Errorf("%s: %v", name, got)
		}
	}
}

func TestAnArchTagIsReplacedOnlyByTheSameArchAndBootMode(t *testing.T) {
	fx := makeEntries(t, 1024)
	p := mustPlan(t, fx.entries, testOptions())
	vm, bm := manifestOf(p, "amd64", Virtualization), manifestOf(p, "amd64", Baremetal)
	older := mustPlan(t, fx.entries, Options{Version: "13.0", ArchTags: true})
	at := func(raw []byte, mt string) Existing { return Existing{Found: true, MediaType: mt, Raw: raw} }
	const mt = "application/vnd.oci.image.manifest.v1+json"
	if err := checkArchTag("r:t", Existing{}, vm, false); err != nil {
		t.Fatalf("empty tag: %v", err)
	}
	if err := checkArchTag("r:t", at(manifestOf(older, "amd64", Virtualization).Raw, mt), vm, false); err != nil {
		t.Fatalf("an earlier build of the same variant: %v", err)
	}
	err := checkArchTag("r:t", at(bm.Raw, mt), vm, true)
	if err == nil || !strings.Contains(err.Error(), "r:t holds the amd64/baremetal manifest "+bm.Digest.String()) || !strings.Contains(err.Error(), "amd64/virtualization manifest "+vm.Digest.String()) {
		t.Fatalf("another boot mode, even with force: %v", err)
	}
	foreign := []byte(`{"schemaVersion":2,"mediaType":"` + mt + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[]}`)
	if err := checkArchTag("r:t", at(foreign, mt), vm, false); err == nil || !strings.Contains(err.Error(), "not written by osimage-oci") {
		t.Fatalf("foreign manifest: %v", err)
	}
	if err := checkArchTag("r:t", at(foreign, mt), vm, true); err != nil {
		t.Fatalf("foreign manifest with force: %v", err)
	}
	index, _, _ := Merge("x", Existing{}, nil, nil, false)
	if err := checkArchTag("r:t", at(index, "application/vnd.oci.image.index.v1+json"), vm, false); err == nil || !strings.Contains(err.Error(), "r:t holds a application/vnd.oci.image.index.v1+json, not an image manifest") {
		t.Fatalf("an index at the arch tag: %v", err)
	}
	if err := checkArchTag("r:t", at([]byte("not json"), ""), vm, false); err == nil || !strings.Contains(err.Error(), "not an image manifest") {
		t.Fatalf("garbage: %v", err)
	}
	if err := checkArchTag("r:t", at([]byte("not json"), ""), vm, true); err != nil {
		t.Fatalf("garbage with force: %v", err)
	}
}

func TestALockDirectoryOthersCanUseIsRefused(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := filepath.Join(tmp, "osimage-oci-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := lockFile(context.Background(), "", "registry:r.io/x"); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "0700") {
		t.Fatalf("error %v", err)
	}
}

// An index-only run for a version no build published writes nothing.
func TestAnIndexOnlyRunWithoutArchTagsWritesNothing(t *testing.T) {
	o := testOptions()
	o.IndexMode = IndexOnly
	o.CombinedTag = "{{ .Version }}"
	p := mustPlan(t, nil, o)
	if len(p.Indexes) != 3 || len(p.Indexes[0].Sources) != 4 {
		t.Fatalf("index-only plan: %+v", p.Indexes)
	}
	dir := t.TempDir()
	res := mustPublish(t, p, Destination{Layout: dir, LockDir: t.TempDir()})
	if len(res.Indexes) != 0 || len(res.TagsWritten) != 0 {
		t.Fatalf("wrote %v", res.TagsWritten)
	}
}

// In a layout too, an entry this machine wrote comes back from its record
// when the tag lost it, as long as its manifest is still there.
func TestALayoutIndexThatLostAnEntryGetsItBackFromTheRecord(t *testing.T) {
	fx := makeEntries(t, 1024)
	dir, lockDir := t.TempDir(), t.TempDir()
	d := Destination{Layout: dir, LockDir: lockDir}
	o := testOptions()
	o.ArchTags = false // no arch tag to heal from: only the record knows
	mustPublish(t, mustPlan(t, fx.entries[0:1], o), d)
	// Someone rewrites the tag with an index that lacks the entry.
	lt, err := newLayoutTarget(d)
	if err != nil {
		t.Fatal(err)
	}
	empty, _, _ := Merge("x", Existing{}, nil, nil, false)
	if err := lt.putIndex(context.Background(), "13.1-kvm", empty); err != nil {
		t.Fatal(err)
	}
	res := mustPublish(t, mustPlan(t, fx.entries[2:3], o), d)
	if res.Indexes[0].Entries != 2 {
		t.Fatalf("index holds %d entries, want amd64's (from the record) and arm64's", res.Indexes[0].Entries)
	}
}

func TestALayerOfExactlyTheRegistrysLimitIsAccepted(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "exact.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10_000_000_000); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	e := Entry{Arch: "amd64", BootMode: Virtualization, Files: []artifact.File{{Path: p, Role: artifact.RoleDisk, Format: "raw", Size: 10_000_000_000, SHA256: strings.Repeat("cd", 32)}}}
	plan := mustPlan(t, []Entry{e}, testOptions())
	rt, err := newRegistryTarget(context.Background(), Destination{Repository: "ghcr.io/example/os", Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayerSizes(plan, rt); err != nil {
		t.Fatalf("10 GB exactly: %v", err)
	}
}
