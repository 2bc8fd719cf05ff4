package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

func variantJSON(t *testing.T, store string, pending ...string) string {
	b, _ := json.Marshal(variant.Variant{Key: "edge-x86_64-virtualization", Image: "edge", Arch: "x86_64", ReleaseVer: "1.0",
		State: store, ReleaseName: "edge-1.0-x86_64-virtualization-r0", Stage: "release", Pending: pending})
	return string(b)
}

func run(t *testing.T, raw map[string]interface{}) (*artifact.Artifact, string, error) {
	t.Helper()
	raw["packer_build_name"] = "edge"
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		return nil, "", err
	}
	ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &strings.Builder{}, ErrorWriter: &strings.Builder{}}
	a, err := b.Run(context.Background(), ui, nil)
	out := ui.Writer.(*strings.Builder).String()
	if a == nil {
		return nil, out, err
	}
	return a.(*artifact.Artifact), out, err
}

func TestTheRecordedBuildBecomesTheArtifactWithTheFilesThatMatch(t *testing.T) {
	store, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(out, "edge.raw"), []byte("disk bytes"), 0o644)
	os.WriteFile(filepath.Join(out, "edge.spdx.json"), []byte("changed since"), 0o644)
	ref := release.Ref{Store: release.Dir{Root: store}, Release: "1.0", Key: "edge-x86_64-virtualization"}
	built := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	release.Update(context.Background(), ref, 0, release.Doc{Image: "edge", Name: "edge-1.0-x86_64-virtualization-r0"}, func(d *release.Doc) error {
		d.Built = &built
		d.Files = []release.File{
			{Role: "disk", Name: "edge.raw", Size: 10, SHA256: "3dd38fb1af2ad3b9bfd7d3e5a2f1fc5f4dd54ee8b1a4b6f3d1f8fb7b4e2a8a8e"},
			{Role: "sbom", Name: "edge.spdx.json", Size: 13, SHA256: "00"},
			{Role: "kernel", Name: "edge.kernel", Size: 5},
		}
		return nil
	})
	// The disk's recorded sha256 is its real one: fix the record.
	sum, _ := fileSum(filepath.Join(out, "edge.raw"))
	release.Update(context.Background(), ref, 0, release.Doc{}, func(d *release.Doc) error { d.Files[0].SHA256 = sum; return nil })

	a, ui, err := run(t, map[string]interface{}{"variant": variantJSON(t, store, "publish", "release"), "output_directory": out})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Outputs) != 1 || a.Outputs[0].Role != "disk" || a.Outputs[0].SHA256 != sum || a.Builder != BuilderID || a.Variant.Key != "edge-x86_64-virtualization" {
		t.Fatalf("artifact %+v", a)
	}
	if !strings.Contains(ui, "edge-1.0-x86_64-virtualization-r0: built 2026-12-01 10:00; pending: publish, release") ||
		!strings.Contains(a.Extra["missing_files"], "sbom edge.spdx.json (") || !strings.Contains(a.Extra["missing_files"], "kernel edge.kernel (not in") {
		t.Fatalf("ui %q, missing %q", ui, a.Extra["missing_files"])
	}
	// Sizes only: the changed SBOM has the recorded size and passes.
	a, _, err = run(t, map[string]interface{}{"variant": variantJSON(t, store), "output_directory": out, "verify": false})
	if err != nil || len(a.Outputs) != 2 {
		t.Fatalf("verify = false: %+v %v", a, err)
	}
}

func TestNothingRecordedOrNoStateIsAnError(t *testing.T) {
	store := t.TempDir()
	if _, _, err := run(t, map[string]interface{}{"variant": variantJSON(t, store, "build")}); err == nil ||
		!strings.Contains(err.Error(), "has no build in the release state: build it with osimage-disk") {
		t.Fatalf("no record: %v", err)
	}
	if _, _, err := run(t, map[string]interface{}{"variant": variantJSON(t, "")}); err == nil || !strings.Contains(err.Error(), "carries no release state") {
		t.Fatalf("no state: %v", err)
	}
	if _, _, err := run(t, map[string]interface{}{}); err == nil || !strings.Contains(err.Error(), "variant is required") {
		t.Fatalf("no variant: %v", err)
	}
}

func fileSum(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}
