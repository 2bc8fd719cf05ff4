package releasemanifest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/release"
)

func TestTheManifestAndNotesComeFromTheStateAndUnfinishedVariantsAreNamed(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1764547200")
	store, out := t.TempDir(), t.TempDir()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range []string{"edge-x86_64-virtualization", "edge-aarch64-virtualization"} {
		release.Update(context.Background(), release.Ref{Store: release.Dir{Root: store}, Release: "1.0", Key: k}, 0, release.Doc{Image: "edge"}, func(d *release.Doc) error {
			d.Built = &now
			r := d.Target("reg", "oci-registry")
			r.Published = &now
			if strings.Contains(k, "x86_64") {
				r.Released = &now
			}
			return nil
		})
	}
	variants := `[{"key":"edge-x86_64-virtualization","targets":[{"name":"reg","interface_type":"oci-registry"}]},
	  {"key":"edge-aarch64-virtualization","targets":[{"name":"reg","interface_type":"oci-registry"}]},
	  {"key":"edge-x86_64-baremetal"}]`
	run := func(stage string) (map[string]string, error) {
		var b Builder
		if _, _, err := b.Prepare(map[string]interface{}{"state": store, "release": "1.0", "variants": variants, "stage": stage,
			"manifest": filepath.Join(out, "m.json"), "notes": filepath.Join(out, "n.md")}); err != nil {
			t.Fatal(err)
		}
		a, err := b.Run(context.Background(), packersdk.TestUi(t), nil)
		if a == nil {
			t.Fatalf("no artifact: %v", err)
		}
		return map[string]string{"manifest": a.State("manifest").(string), "notes": a.State("notes").(string)}, err
	}
	files, err := run("release")
	if err == nil || !strings.Contains(err.Error(), "has not finished the release stage (2 of 3 variants)") ||
		!strings.Contains(err.Error(), "edge-aarch64-virtualization (r0): release pending") || !strings.Contains(err.Error(), "edge-x86_64-baremetal: no state document") {
		t.Fatalf("release stage: %v", err)
	}
	var m release.Manifest
	b, _ := os.ReadFile(files["manifest"])
	if err := json.Unmarshal(b, &m); err != nil || m.Release != "1.0" || len(m.Variants) != 2 || m.Created.Unix() != 1764547200 {
		t.Fatalf("manifest %v: %s", err, b)
	}
	notes, _ := os.ReadFile(files["notes"])
	if !strings.Contains(string(notes), "# Release 1.0") || !strings.Contains(string(notes), "edge-aarch64-virtualization") {
		t.Fatalf("notes:\n%s", notes)
	}
	variants = `[{"key":"edge-x86_64-virtualization","targets":[{"name":"reg","interface_type":"oci-registry"}]}]`
	if _, err := run("release"); err != nil {
		t.Fatalf("one released variant expected: %v", err)
	}
}

func TestConfigNamesWhatIsMissing(t *testing.T) {
	var b Builder
	_, _, err := b.Prepare(map[string]interface{}{"stage": "ship", "variants": "nope"})
	for _, want := range []string{"state is required", "release is required", `stage = "ship"`, "want a JSON array of variants"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v lacks %q", err, want)
		}
	}
}
