package disk

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

func stateVariant(t *testing.T, store string) string {
	t.Helper()
	b, _ := json.Marshal(variant.Variant{Key: "edge-x86_64-virtualization", Image: "edge", Arch: "x86_64", ReleaseVer: "1.0",
		State: store, Revision: 0, ReleaseName: "edge-1.0-x86_64-virtualization-r0", Stage: "release", Pending: []string{"build"}})
	return string(b)
}

// A build records itself in the variant's release state; a published
// revision is never built again.
func TestABuildIsRecordedAndAPublishedRevisionIsRefused(t *testing.T) {
	store := t.TempDir()
	src := testutil.SparseFile(t, filepath.Join(t.TempDir(), "src.raw"), 4<<20, map[int64][]byte{0: []byte("boot")})
	raw := func() map[string]interface{} {
		return map[string]interface{}{"source_image": src, "variant": stateVariant(t, store), "sbom": "none"}
	}
	a, ui, err := build(t, context.Background(), raw())
	if err != nil {
		t.Fatal(err)
	}
	ref := release.Ref{Store: release.Dir{Root: store}, Release: "1.0", Key: "edge-x86_64-virtualization"}
	c, err := release.Select(context.Background(), ref, "edge", -1)
	if err != nil || c.Doc == nil || c.Doc.Built == nil || c.Doc.Name != "edge-1.0-x86_64-virtualization-r0" {
		t.Fatalf("state after the build: %+v %v", c, err)
	}
	disk, _ := a.One("disk")
	if len(c.Doc.Files) != 1 || c.Doc.Files[0].Name != filepath.Base(disk.Path) || c.Doc.Files[0].SHA256 != disk.SHA256 || c.Doc.Files[0].Size != 4<<20 {
		t.Fatalf("recorded files %+v, want the disk with its sha256", c.Doc.Files)
	}
	if !strings.Contains(ui.output(), "Recorded the build of edge-1.0-x86_64-virtualization-r0") {
		t.Errorf("ui: %s", ui.output())
	}
	// Not published: building again is allowed.
	if _, _, err := build(t, context.Background(), raw()); err != nil {
		t.Fatalf("rebuild of an unpublished revision: %v", err)
	}
	release.Update(context.Background(), ref, 0, release.Doc{}, func(d *release.Doc) error {
		now := time.Now()
		d.Target("reg", "oci-registry").Published = &now
		return nil
	})
	out := filepath.Join(t.TempDir(), "out")
	r := raw()
	r["output_directory"] = out
	_, _, err = build(t, context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "is published (reg): a rebuild needs a new revision, revision = 1") {
		t.Fatalf("rebuild of a published revision: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the refused build wrote its output directory: %v", err)
	}
}
