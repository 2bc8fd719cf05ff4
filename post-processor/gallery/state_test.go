package gallery

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// With a release state: stage publish uploads and publishes as a
// pre-release (excluded from latest) and records it; again, nothing; stage
// release promotes without uploading (the disk need not be here); again,
// nothing.
func TestTheReleaseStatePublishesAPreReleaseThenPromotesIt(t *testing.T) {
	az := testsvc.StartAzurite(t)
	dir, stateDir := t.TempDir(), t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "disk.raw"), 30<<20, map[int64][]byte{0: bytes.Repeat([]byte{7}, 4096)})
	store := newStore()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	run := func(stage string, files []artifact.File) (string, error) {
		v := almaVariant("x86_64")
		v.State, v.Stage, v.ReleaseName = stateDir, stage, "almalinux-9.6-x86_64-r0"
		in := &artifact.Artifact{Builder: "osimage.builder.state", Variant: v, Outputs: files}
		p, err := configure(t, map[string]interface{}{
			"storage_connection_string": az.ConnectionString, "storage_account": "devstoreaccount1", "create_container": true,
			"hyperv_generations":               []string{"V1", "V2"},
			"shared_image_gallery_destination": map[string]interface{}{"gen1_image_name": "almalinux-9-gen1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		p.config.PollInterval = 10 * time.Millisecond
		p.armTransport, p.credential = store.Transport(), &azfake.TokenCredential{}
		var b strings.Builder
		ui := &packersdk.BasicUi{Reader: strings.NewReader(""), Writer: &b, ErrorWriter: &b, PB: &packersdk.NoopProgressTracker{}}
		_, _, _, err = p.PostProcess(context.Background(), ui, in)
		return b.String(), err
	}
	disk := []artifact.File{{Path: raw, Role: artifact.RoleDisk, SHA256: "ab"}}
	out, err := run("publish", disk)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if store.VersionCreates.Load() != 2 || !strings.Contains(out, "a pre-release (stage publish)") {
		t.Fatalf("%d versions created:\n%s", store.VersionCreates.Load(), out)
	}
	for _, def := range []string{"almalinux-9-gen1", "almalinux-9-gen2"} {
		found := false
		for k, v := range store.Versions {
			if strings.HasPrefix(k, def+"/") {
				found = true
				if !*v.Properties.PublishingProfile.ExcludeFromLatest {
					t.Errorf("%s: a pre-release version is in latest", k)
				}
			}
		}
		if !found {
			t.Errorf("no version of %s", def)
		}
	}
	ref := release.Ref{Store: release.Dir{Root: stateDir}, Release: "9.6", Key: "alma-9-x86_64"}
	c, err := release.Select(context.Background(), ref, "almalinux", -1)
	if err != nil || c.Doc == nil || len(c.Doc.Targets) != 1 {
		t.Fatalf("state: %+v %v", c, err)
	}
	tg := c.Doc.Targets[0]
	if tg.Published == nil || tg.Released != nil || tg.Blob == nil || !strings.HasPrefix(tg.Blob.URL, az.BlobURL) || tg.Blob.Source != "ab" ||
		len(tg.Blob.MD5) != 32 || len(tg.Versions) != 2 || !tg.Versions[0].ExcludeFromLatest {
		t.Fatalf("recorded target %+v", tg)
	}

	// Again: nothing to do, no disk needed.
	out, err = run("publish", nil)
	if err != nil || !strings.Contains(out, "already published to acg") || store.VersionCreates.Load() != 2 {
		t.Fatalf("second publish: %v\n%s", err, out)
	}
	// Release: promotion, no upload, no disk.
	os.Remove(raw)
	out, err = run("release", nil)
	if err != nil || store.VersionUpdates.Load() != 2 || store.VersionCreates.Load() != 2 || !strings.Contains(out, "2 of 2 versions were excluded from latest and are now in it") {
		t.Fatalf("release: %v, %d updates\n%s", err, store.VersionUpdates.Load(), out)
	}
	for k, v := range store.Versions {
		if *v.Properties.PublishingProfile.ExcludeFromLatest {
			t.Errorf("%s still excluded from latest after the release", k)
		}
	}
	c, _ = release.Select(context.Background(), ref, "almalinux", -1)
	if c.Doc.Targets[0].Released == nil || c.Doc.Targets[0].Versions[1].ExcludeFromLatest {
		t.Fatalf("recorded after release: %+v", c.Doc.Targets[0])
	}
	out, err = run("release", nil)
	if err != nil || !strings.Contains(out, "already published and released to acg") || store.VersionUpdates.Load() != 2 {
		t.Fatalf("second release: %v\n%s", err, out)
	}
	// Stage build never publishes.
	if out, err := run("build", nil); err != nil || !strings.Contains(out, "stage build, not publishing") {
		t.Fatalf("build stage: %v\n%s", err, out)
	}
}
