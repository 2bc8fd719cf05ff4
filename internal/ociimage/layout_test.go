package ociimage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func TestLayoutOutputIsReadBackByTheLayoutPackage(t *testing.T) {
	fx := makeEntries(t, 1<<20)
	o := testOptions()
	o.CombinedTag = "{{ .Version }}"
	p := mustPlan(t, fx.entries, o)
	dir := filepath.Join(t.TempDir(), "oci")
	d := Destination{Layout: dir, LockDir: t.TempDir()}
	res := mustPublish(t, p, d)
	n, size := uniqueBlobs(p)
	// The layout counts layers only; configs and manifests are small.
	nl := n - 2
	if res.BlobsSent != nl || res.BytesSent != size-int64(len(p.Manifests[0].Config))-int64(len(p.Manifests[1].Config)) {
		t.Fatalf("wrote %d blobs %d bytes", res.BlobsSent, res.BytesSent)
	}

	// The marker every OCI layout reader (skopeo, oras, umoci) looks for.
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || json.Unmarshal(b, &marker) != nil || marker.Version != "1.0.0" {
		t.Errorf("oci-layout: %q, %v; want imageLayoutVersion 1.0.0", b, err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]v1.Descriptor{}
	var names []string
	for _, d := range tm.Manifests {
		refs[d.Annotations[AnnotationRefName]] = d
		names = append(names, d.Annotations[AnnotationRefName])
	}
	if !sort.StringsAreSorted(names) || tm.SchemaVersion != 2 || tm.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index.json: schema %d, media type %q, refs in order %v; want 2, the OCI index type, sorted refs", tm.SchemaVersion, tm.MediaType, names)
	}
	if len(refs) != 7 {
		t.Fatalf("index.json names %d refs, want 3 indexes and 4 arch tags: %v", len(refs), refs)
	}
	for _, bm := range []string{Virtualization, Baremetal} {
		ii, err := top.ImageIndex(refs["13.1-"+IroncoreVariant(bm)].Digest)
		if err != nil {
			t.Fatal(err)
		}
		im, _ := ii.IndexManifest()
		if got := strings.Join(keysOf(im), " "); got != bm+"/amd64 "+bm+"/arm64" {
			t.Fatalf("%s holds %s", bm, got)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			m := manifestOf(p, arch, bm)
			if refs["13.1-"+IroncoreVariant(bm)+"-"+arch].Digest != m.Digest {
				t.Fatalf("arch tag %s-%s", bm, arch)
			}
			img, err := ii.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := img.RawManifest()
			cfg, _ := img.RawConfigFile()
			if !bytes.Equal(raw, m.Raw) || !bytes.Equal(cfg, m.Config) {
				t.Fatal("manifest or config differ")
			}
			ls, _ := img.Layers()
			for i, l := range ls {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if sha(b) != sha256Of(t, m.Layers[i].Source) {
					t.Fatalf("layer %s differs from its file", m.Layers[i].Role)
				}
			}
		}
	}
	ii, _ := top.ImageIndex(refs["13.1"].Digest)
	im, _ := ii.IndexManifest()
	if len(im.Manifests) != 4 {
		t.Fatalf("combined index holds %d", len(im.Manifests))
	}

	// Again: nothing written, index.json unchanged.
	before, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	res2 := mustPublish(t, mustPlan(t, fx.entries, o), d)
	after, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if res2.BlobsSent != 0 || !bytes.Equal(before, after) {
		t.Fatalf("second publish wrote %d blobs; index.json changed: %v", res2.BlobsSent, !bytes.Equal(before, after))
	}
	for i := range res.Indexes {
		if res2.Indexes[i].Digest != res.Indexes[i].Digest || res2.Indexes[i].Changed {
			t.Fatal("second publish changed an index")
		}
	}
	// No temporary files left.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if strings.Contains(filepath.Base(p), "tmp") || strings.HasPrefix(filepath.Base(p), ".") {
			t.Errorf("left over: %s", p)
		}
		return nil
	})

	// A truncated blob (a crash of an older writer) is written again.
	l0 := p.Manifests[0].Layers[0]
	bp := filepath.Join(dir, "blobs", "sha256", l0.Digest.Hex)
	os.Truncate(bp, 10)
	mustPublish(t, mustPlan(t, fx.entries, o), d)
	if sha256Of(t, bp) != l0.Digest.String() {
		t.Fatal("a truncated blob was kept")
	}
}

func TestALayoutWithoutSchemaVersionGetsOneAndKeepsItsEntries(t *testing.T) {
	fx := makeEntries(t, 8<<10)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	other := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:` + strings.Repeat("c", 64) + `","annotations":{"org.opencontainers.image.ref.name":"zz-other"}}`
	// Two entries without a ref name (another tool's): kept, in their order.
	unnamed := func(c string) string {
		return `{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:` + strings.Repeat(c, 64) + `"}`
	}
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":[`+unnamed("b")+`,`+unnamed("a")+`,`+other+`]}`), 0o644)
	o := testOptions()
	o.CombinedTag = "{{ .Version }}" // three refs written one after the other
	mustPublish(t, mustPlan(t, fx.entries[:1], o), Destination{Layout: dir, LockDir: t.TempDir()})
	var top v1.IndexManifest
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range top.Manifests {
		names = append(names, d.Annotations[AnnotationRefName])
	}
	if top.SchemaVersion != 2 || strings.Join(names, ",") != ",,13.1,13.1-kvm,13.1-kvm-amd64,zz-other" {
		t.Fatalf("index.json schema %d refs %q", top.SchemaVersion, names)
	}
	if top.Manifests[0].Digest.Hex[0] != 'b' || top.Manifests[1].Digest.Hex[0] != 'a' {
		t.Errorf("the unnamed entries were reordered: %s, %s", top.Manifests[0].Digest, top.Manifests[1].Digest)
	}
}

func TestLayoutCorruptIndexIsAnErrorUnlessForced(t *testing.T) {
	fx := makeEntries(t, 8<<10)
	dir := t.TempDir()
	d := Destination{Layout: dir, LockDir: t.TempDir()}
	res := mustPublish(t, mustPlan(t, fx.entries[:1], testOptions()), d)
	h, _ := v1.NewHash(res.Indexes[0].Digest)
	os.WriteFile(filepath.Join(dir, "blobs", h.Algorithm, h.Hex), []byte("{not json"), 0o644)
	p := mustPlan(t, fx.entries[2:3], testOptions()) // arm64 virtualization: the same tag
	_, err := Publish(context.Background(), p, d)
	if !errors.Is(err, ErrCorruptIndex) || !strings.Contains(err.Error(), dir+":13.1-kvm") {
		t.Fatalf("error %v", err)
	}
	// Force replaces the corrupt index, but never drops another build's
	// entry: amd64's comes back from its arch tag.
	p.Force = true
	res = mustPublish(t, p, d)
	if res.Indexes[0].Entries != 2 {
		t.Fatalf("forced: %d entries, want amd64's (from its arch tag) and arm64's", res.Indexes[0].Entries)
	}
	// A broken index.json is reported, not replaced.
	os.WriteFile(filepath.Join(dir, "index.json"), []byte("nope"), 0o644)
	if _, err := Publish(context.Background(), mustPlan(t, fx.entries[:1], testOptions()), d); !errors.Is(err, ErrCorruptIndex) || !strings.Contains(err.Error(), "index.json") {
		t.Fatalf("error %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.json")); string(b) != "nope" {
		t.Fatal("a broken index.json was overwritten")
	}
}
