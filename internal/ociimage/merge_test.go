package ociimage

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func desc(arch, bootMode, seed string) v1.Descriptor {
	d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 100, Digest: digestOf([]byte(seed)),
		Platform: &v1.Platform{OS: "linux", Architecture: arch}}
	if bootMode != "" {
		d.Annotations = map[string]string{AnnotationBootMode: bootMode}
	}
	return d
}

func indexOf(t testing.TB, ann map[string]string, ds ...v1.Descriptor) Existing {
	t.Helper()
	b, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds, Annotations: ann})
	if err != nil {
		t.Fatal(err)
	}
	return Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: b}
}

func entries(idx *v1.IndexManifest) []string {
	var out []string
	for _, d := range idx.Manifests {
		out = append(out, d.Annotations[AnnotationBootMode]+"/"+d.Platform.Architecture+"="+d.Digest.Hex[:6])
	}
	return out
}

func short(seed string) string { return digestOf([]byte(seed)).Hex[:6] }

func TestMergeIntoNothingGivesOurEntriesInOrder(t *testing.T) {
	raw, idx, err := Merge("r:t", Existing{}, []v1.Descriptor{desc("arm64", Baremetal, "a"), desc("amd64", Baremetal, "b"), desc("arm64", Virtualization, "c")}, map[string]string{"k": "v"}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"baremetal/amd64=" + short("b"), "baremetal/arm64=" + short("a"), "virtualization/arm64=" + short("c")}
	if got := entries(idx); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries %v\nwant %v", got, want)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex || idx.Annotations["k"] != "v" {
		t.Fatalf("index %+v", idx)
	}
	var back v1.IndexManifest
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(&back, idx) {
		t.Fatalf("raw bytes do not hold the index: %v", err)
	}
}

func TestMergeReplacesOnlyOurOwnEntriesAndKeepsOthers(t *testing.T) {
	cur := indexOf(t, map[string]string{"old": "1", "k": "old"},
		desc("amd64", Virtualization, "old-amd64"), desc("arm64", Virtualization, "other-arm64"), desc("riscv64", "", "foreign"),
		v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: 1, Digest: digestOf([]byte("no-platform"))})
	raw, idx, err := Merge("r:t", cur, []v1.Descriptor{desc("amd64", Virtualization, "new-amd64")}, map[string]string{"k": "new"}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := entries2(idx)
	want := []string{"virtualization/amd64=" + short("new-amd64"), "virtualization/arm64=" + short("other-arm64"), "/-=" + short("no-platform"), "/riscv64=" + short("foreign")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries %v\nwant %v", got, want)
	}
	if idx.Annotations["old"] != "1" || idx.Annotations["k"] != "new" {
		t.Fatalf("annotations %v: keep others', set ours", idx.Annotations)
	}
	// Merging the same entries again changes nothing, byte for byte.
	raw2, _, err := Merge("r:t", Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: raw}, []v1.Descriptor{desc("amd64", Virtualization, "new-amd64")}, map[string]string{"k": "new"}, false)
	if err != nil || string(raw2) != string(raw) {
		t.Fatalf("second merge differs: %v\n%s\n%s", err, raw, raw2)
	}
}

func entries2(idx *v1.IndexManifest) []string {
	var out []string
	for _, d := range idx.Manifests {
		arch := "-"
		if d.Platform != nil {
			arch = d.Platform.Architecture
		}
		out = append(out, d.Annotations[AnnotationBootMode]+"/"+arch+"="+d.Digest.Hex[:6])
	}
	return out
}

func TestMergeOrderIsIndependentOfExistingOrder(t *testing.T) {
	a := indexOf(t, nil, desc("arm64", Baremetal, "1"), desc("amd64", Virtualization, "2"), desc("s390x", Virtualization, "3"), desc("amd64", "custom", "4"))
	b := indexOf(t, nil, desc("amd64", "custom", "4"), desc("s390x", Virtualization, "3"), desc("amd64", Virtualization, "2"), desc("arm64", Baremetal, "1"))
	add := []v1.Descriptor{desc("amd64", Baremetal, "5")}
	ra, ia, err := Merge("r:t", a, add, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	rb, _, _ := Merge("r:t", b, add, nil, false)
	if string(ra) != string(rb) {
		t.Fatal("merge result depends on the existing order")
	}
	want := []string{"baremetal/amd64=" + short("5"), "baremetal/arm64=" + short("1"), "virtualization/amd64=" + short("2"), "virtualization/s390x=" + short("3"), "custom/amd64=" + short("4")}
	if got := entries(ia); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries %v\nwant %v", got, want)
	}
}

func TestMergeTieBreaksSameKeyByOSThenDigest(t *testing.T) {
	x := desc("amd64", "", "x")
	y := desc("amd64", "", "y")
	w := desc("amd64", "", "w")
	w.Platform.OS = "windows"
	_, idx, err := Merge("r:t", indexOf(t, nil, w, y, x), []v1.Descriptor{desc("arm64", Virtualization, "z")}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	a, b := x.Digest.String(), y.Digest.String()
	if a > b {
		a, b = b, a
	}
	got := []string{idx.Manifests[1].Digest.String(), idx.Manifests[2].Digest.String(), idx.Manifests[3].Platform.OS}
	if !reflect.DeepEqual(got, []string{a, b, "windows"}) {
		t.Fatalf("order %v", got)
	}
}

func TestMergeRefusesAForeignEntryForOurPlatformUnlessForced(t *testing.T) {
	cur := indexOf(t, nil, desc("amd64", "", "foreign"), desc("arm64", "", "foreign-arm"))
	add := []v1.Descriptor{desc("amd64", Virtualization, "ours")}
	_, _, err := Merge("reg/repo:1-virtualization", cur, add, nil, false)
	if !errors.Is(err, ErrForeignEntry) || !strings.Contains(err.Error(), "reg/repo:1-virtualization holds") || !strings.Contains(err.Error(), "linux/amd64") || !strings.Contains(err.Error(), "force") {
		t.Fatalf("error %v", err)
	}
	_, idx, err := Merge("r", cur, add, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(idx); !reflect.DeepEqual(got, []string{"virtualization/amd64=" + short("ours"), "/arm64=" + short("foreign-arm")}) {
		t.Fatalf("forced merge %v", got)
	}
}

func TestMergeRefusesNonIndexAndCorruptIndexUnlessForced(t *testing.T) {
	manifest, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1})
	cases := map[string]struct {
		cur  Existing
		want error
		msg  string
	}{
		"image manifest":        {Existing{Found: true, MediaType: string(types.OCIManifestSchema1), Raw: manifest}, ErrNotAnIndex, "holds a application/vnd.oci.image.manifest.v1+json"},
		"manifest by body":      {Existing{Found: true, Raw: manifest}, ErrNotAnIndex, "not an image index"},
		"document without type": {Existing{Found: true, Raw: []byte(`{"schemaVersion":2}`)}, ErrNotAnIndex, "document without a media type"},
		"not json":              {Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: []byte("{garbage")}, ErrCorruptIndex, "corrupt"},
		"bad manifests":         {Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: []byte(`{"schemaVersion":2,"manifests":{"a":1}}`)}, ErrCorruptIndex, "corrupt"},
		"schema 1":              {Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: []byte(`{"schemaVersion":1,"manifests":[]}`)}, ErrCorruptIndex, "schemaVersion 1"},
		"entry without digest":  {Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: []byte(`{"schemaVersion":2,"manifests":[{"size":3}]}`)}, ErrCorruptIndex, "manifests[0] has no valid digest"},
		"negative size":         {Existing{Found: true, MediaType: string(types.OCIImageIndex), Raw: []byte(`{"schemaVersion":2,"manifests":[{"size":-3,"digest":"sha256:` + strings.Repeat("a", 64) + `"}]}`)}, ErrCorruptIndex, "manifests[0]"},
	}
	add := []v1.Descriptor{desc("amd64", Virtualization, "ours")}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := Merge("reg/repo:tag", c.cur, add, nil, false)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "reg/repo:tag") || !strings.Contains(err.Error(), "set force") {
				t.Fatalf("error %v, want %v containing %q", err, c.want, c.msg)
			}
			_, idx, err := Merge("reg/repo:tag", c.cur, add, nil, true)
			if err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != add[0].Digest {
				t.Fatalf("forced: %v %+v", err, idx)
			}
		})
	}
	// An index without a top-level media type is still an index.
	ok := []byte(`{"schemaVersion":2,"manifests":[]}`)
	if _, _, err := Merge("r", Existing{Found: true, Raw: ok}, add, nil, false); err != nil {
		t.Fatalf("index without mediaType: %v", err)
	}
	// Another tool's entry of size 0 is not ours to judge: it is kept.
	zero := desc("s390x", "", "theirs")
	zero.Size = 0
	_, idx, err := Merge("r", indexOf(t, nil, zero), add, nil, false)
	if err != nil || len(idx.Manifests) != 2 || !slices.ContainsFunc(idx.Manifests, func(d v1.Descriptor) bool { return d.Digest == zero.Digest && d.Size == 0 }) {
		t.Fatalf("index with an entry of size 0: %v, %+v", err, idx)
	}
	// Docker manifest lists are indexes too.
	if _, _, err := Merge("r", Existing{Found: true, MediaType: string(types.DockerManifestList), Raw: ok}, add, nil, false); err != nil {
		t.Fatalf("docker manifest list: %v", err)
	}
}

func TestDescriptorForSetsPlatformVariantOnlyWhenAsked(t *testing.T) {
	m := &Manifest{BootMode: Baremetal, Descriptor: desc("arm64", Baremetal, "m")}
	d := descriptorFor(m, IndexTag{PlatformVariant: true})
	if d.Platform.Variant != Baremetal || m.Descriptor.Platform.Variant != "" {
		t.Fatalf("variant %q, original %q", d.Platform.Variant, m.Descriptor.Platform.Variant)
	}
	d.Annotations["x"] = "y"
	if m.Descriptor.Annotations["x"] != "" {
		t.Fatal("descriptorFor shares annotations with the manifest")
	}
	if d := descriptorFor(m, IndexTag{}); d.Platform.Variant != "" {
		t.Fatalf("variant %q without PlatformVariant", d.Platform.Variant)
	}
}

func TestMissingFromComparesDigestAndKey(t *testing.T) {
	a, b := desc("amd64", Virtualization, "a"), desc("arm64", Virtualization, "b")
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{a}}
	if got := missingFrom(idx, []v1.Descriptor{a, b}); len(got) != 1 || got[0].Digest != b.Digest {
		t.Fatalf("missing %v", got)
	}
	moved := desc("arm64", Virtualization, "a")
	if got := missingFrom(idx, []v1.Descriptor{moved}); len(got) != 1 {
		t.Fatal("same digest under another platform counted as present")
	}
	if got := missingFrom(nil, []v1.Descriptor{a}); len(got) != 1 {
		t.Fatal("nil index holds nothing")
	}
}

// TestParseIndexTakesTheDocumentsOwnMediaTypeWhenNoneWasServed: when the
// registry or layout gives no media type, the document's own mediaType
// decides: an index without entries is an empty index, a manifest is named
// as such in the error.
func TestParseIndexTakesTheDocumentsOwnMediaTypeWhenNoneWasServed(t *testing.T) {
	t.Parallel()
	idx, err := parseIndex("r:t", Existing{Found: true, Raw: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}`)})
	if err != nil || idx == nil || len(idx.Manifests) != 0 {
		t.Errorf("index without entries: %+v, %v; want an empty index", idx, err)
	}
	_, err = parseIndex("r:t", Existing{Found: true, Raw: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`)})
	if !errors.Is(err, ErrNotAnIndex) || !strings.Contains(err.Error(), "r:t holds a application/vnd.oci.image.manifest.v1+json") {
		t.Errorf("manifest: err = %v, want ErrNotAnIndex naming its media type", err)
	}
}

// TestLockFileLivesInTheLockDirectory: the lock that serialises builds on
// one machine is a file in Destination.LockDir when one is given.
func TestLockFileLivesInTheLockDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unlock, err := lockFile(context.Background(), dir, "layout:/some/dir")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if m, _ := filepath.Glob(filepath.Join(dir, "osimage-oci-*.lock")); len(m) != 1 {
		t.Errorf("lock files in the lock directory: %v, want one", m)
	}
}
