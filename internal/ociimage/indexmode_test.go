package ociimage

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

// With immutable tags, each build writes its arch tags only (IndexNone) and
// one last run writes every index once from them (IndexOnly); a changed
// manifest at an existing tag is refused with an error that says what to do.
func TestImmutableRepositoriesTakePerBuildTagsAndOneFinalIndex(t *testing.T) {
	t.Parallel()
	reg, proxy := proxied(t, testsvc.RegistryBehaviour{Immutable: true})
	fx := makeEntries(t, 8<<10)
	repo := proxy.Host + "/os/locked"
	d := Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond}
	o := realOptions()
	o.IndexMode = IndexNone
	for _, e := range fx.entries {
		res := mustPublish(t, mustPlan(t, []Entry{e}, o), d)
		if len(res.Indexes) != 0 || len(res.TagsWritten) != 1 {
			t.Fatalf("index mode none: indexes %v, tags written %v", res.Indexes, res.TagsWritten)
		}
	}
	o.IndexMode = IndexOnly
	// The final run carries no files: any variant of the version will do.
	final := mustPlan(t, []Entry{{Arch: "amd64", BootMode: Virtualization}}, o)
	if len(final.Manifests) != 0 {
		t.Fatalf("index-only plan has %d manifests", len(final.Manifests))
	}
	res := mustPublish(t, final, d)
	if strings.Join(res.TagsWritten, " ") != "13.1 13.1-baremetal 13.1-virtualization" || res.BlobsSent != 0 {
		t.Fatalf("final run wrote %v, sent %d blobs", res.TagsWritten, res.BlobsSent)
	}
	if got := entryKeys(t, reg.Host+"/os/locked:13.1"); got != allFour {
		t.Fatalf("the combined index holds %s", got)
	}
	if proxy.Refused() != 0 {
		t.Fatalf("%d overwrites refused", proxy.Refused())
	}
	// Running it again changes nothing and writes nothing.
	if res := mustPublish(t, mustPlan(t, []Entry{{Arch: "amd64", BootMode: Virtualization}}, o), d); len(res.TagsWritten) != 0 {
		t.Fatalf("second final run wrote %v", res.TagsWritten)
	}
	// Another manifest for an existing arch tag: refused, said plainly.
	o.IndexMode = IndexNone
	o.SourceRevision = "changed"
	_, err := Publish(context.Background(), mustPlan(t, fx.entries[:1], o), d)
	if !errors.Is(err, ErrImmutableTag) || !strings.Contains(err.Error(), repo) || !strings.Contains(err.Error(), `index_mode = "only"`) {
		t.Fatalf("overwrite: %v", err)
	}
}

// Builds on two machines share no lock and no record, and a stale registry
// can hide each one's write from the other: the combined index may then
// lack an entry, which stays in its build's arch tag; the next merge (here
// the final index-only run) adds it.
func TestAcrossMachinesTheNextMergeAddsWhatAStaleReadDelayed(t *testing.T) {
	t.Parallel()
	reg, proxy := proxied(t, testsvc.RegistryBehaviour{StaleFor: time.Hour})
	fx := makeEntries(t, 8<<10)
	repo := proxy.Host + "/os/machines"
	o := realOptions()
	for _, e := range fx.entries[:2] {
		// Each build on a machine of its own.
		mustPublish(t, mustPlan(t, []Entry{e}, o), Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond})
	}
	if got := entryKeys(t, reg.Host+"/os/machines:13.1"); got != "virtualization/amd64" && got != "baremetal/amd64" {
		t.Fatalf("the stand-in did not hide one machine's write from the other: %s", got)
	}
	proxy.Set(testsvc.RegistryBehaviour{}) // the registry catches up
	o.IndexMode = IndexOnly
	mustPublish(t, mustPlan(t, nil, o), Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond})
	if got := entryKeys(t, reg.Host+"/os/machines:13.1"); got != "baremetal/amd64 virtualization/amd64" {
		t.Fatalf("after the final merge the combined index holds %s", got)
	}
}

func TestCombinedFirstPutsTheAskedBootModeFirst(t *testing.T) {
	fx := makeEntries(t, 1024)
	o := testOptions()
	o.CombinedTag = "all"
	o.CombinedFirst = Virtualization
	p := mustPlan(t, fx.entries, o)
	for _, it := range p.Indexes {
		if it.Tag != "all" {
			continue
		}
		if m := p.Manifests[it.Manifests[0]]; m.BootMode != Virtualization || m.Arch != "amd64" {
			t.Fatalf("first entry %s/%s", m.Arch, m.BootMode)
		}
	}
	o.CombinedFirst = "kvm"
	if _, err := NewPlan(fx.entries, o); err == nil || !strings.Contains(err.Error(), `first boot mode "kvm"`) {
		t.Fatalf("bad first boot mode: %v", err)
	}
	o.CombinedFirst, o.IndexMode = "", "sometimes"
	if _, err := NewPlan(fx.entries, o); err == nil || !strings.Contains(err.Error(), `index mode "sometimes"`) {
		t.Fatalf("bad index mode: %v", err)
	}
	o.IndexMode, o.ArchTags = IndexOnly, false
	if _, err := NewPlan(nil, o); err == nil || !strings.Contains(err.Error(), "turn arch tags on") {
		t.Fatalf("index-only without arch tags: %v", err)
	}
}

// The machine's record must not bring back a manifest someone deleted: a
// registry refuses an index naming a manifest it does not have, and every
// later build would fail.
func TestARecordedEntryWhoseManifestWasDeletedIsDropped(t *testing.T) {
	reg, proxy := proxied(t, testsvc.RegistryBehaviour{StaleFor: time.Hour})
	fx := makeEntries(t, 8<<10)
	repo := proxy.Host + "/os/deleted"
	d := Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond}
	o := realOptions()
	first := mustPlan(t, fx.entries[0:1], o) // amd64 virtualization
	mustPublish(t, first, d)
	gone, err := name.NewDigest(reg.Host + "/os/deleted@" + first.Manifests[0].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(gone); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, mustPlan(t, fx.entries[2:3], o), d) // arm64 virtualization
	if got := entryKeys(t, reg.Host+"/os/deleted:13.1-virtualization"); got != "virtualization/arm64" {
		t.Fatalf("index holds %s", got)
	}
}

// What this machine wrote is recorded tag by tag: when a later index tag
// fails, the record still has the ones written before it.
func TestTheRecordKeepsTheIndexesWrittenBeforeALaterTagFailed(t *testing.T) {
	t.Parallel()
	_, proxy := proxied(t, testsvc.RegistryBehaviour{Immutable: true})
	fx := makeEntries(t, 8<<10)
	repo := proxy.Host + "/os/partial"
	lockDir := t.TempDir()
	d := Destination{Repository: repo, LockDir: lockDir, Settle: time.Millisecond}
	o := realOptions()
	o.CombinedTag = ""
	o.ExtraTags = []string{"zz-{{ .Version }}"} // sorted after 13.1-virtualization
	mustPublish(t, mustPlan(t, fx.entries[0:1], Options{Version: "13.1", Tag: "zz-{{ .Version }}", ArchTags: false}), Destination{Repository: repo, LockDir: t.TempDir(), Settle: time.Millisecond})
	_, err := Publish(context.Background(), mustPlan(t, fx.entries[2:3], o), d)
	if !errors.Is(err, ErrImmutableTag) || !strings.Contains(err.Error(), "zz-13.1") {
		t.Fatalf("error %v", err)
	}
	rec, err := loadRecord(lockDir, "registry:"+repo)
	if err != nil {
		t.Fatal(err)
	}
	if idx, _ := rec.entries("13.1-virtualization", ""); idx == nil || len(idx.Manifests) != 1 {
		t.Fatalf("record %+v", rec.Tags)
	}
}
