package gallery

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// TestOverwritingABlobRecreatesTheVersionsMadeFromIt: with a fixed
// blob_name, a new disk replaces the blob's bytes; a version made from the
// old bytes must not then be skipped as "same source".
func TestOverwritingABlobRecreatesTheVersionsMadeFromIt(t *testing.T) {
	az := testsvc.StartAzurite(t)
	store := newStore()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	dir := t.TempDir()
	disk := func(name string, fill byte) *artifact.Artifact {
		raw := testutil.SparseFile(t, filepath.Join(dir, name), 4<<20, map[int64][]byte{0: bytes.Repeat([]byte{fill}, 4096)})
		return &artifact.Artifact{Builder: "packer.file", Variant: almaVariant("x86_64"), Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	}
	run := func(in *artifact.Artifact, extra map[string]interface{}) (packersdk.Artifact, error) {
		cfg := map[string]interface{}{"storage_connection_string": az.ConnectionString, "create_container": true, "blob_name": "fixed.vhd",
			"shared_image_gallery_destination": map[string]interface{}{"image_version": "1.0.0"}}
		for k, v := range extra {
			cfg[k] = v
		}
		p, err := configure(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		p.armTransport, p.credential = store.Transport(), &azfake.TokenCredential{}
		out, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
		return out, err
	}
	first, err := run(disk("a.raw", 0xA), nil)
	if err != nil {
		t.Fatal(err)
	}
	md5A := first.State("blob_md5")

	// Another disk, overwrite_blob without force: stopped before the blob
	// is touched, naming the version that uses it.
	_, err = run(disk("b.raw", 0xB), map[string]interface{}{"overwrite_blob": true})
	if err == nil || !strings.Contains(err.Error(), "1.0.0 of almalinux-9-gen2") || !strings.Contains(err.Error(), "force") {
		t.Fatalf("overwrite_blob without force: %v", err)
	}
	again, err := run(disk("a2.raw", 0xA), nil)
	if err != nil || again.State("blob_md5") != md5A || again.State("blob_reused") != "true" {
		t.Fatalf("the blob was changed by the refused run: %v %v", again.State("blob_md5"), err)
	}

	// packer build -force: the blob is replaced and so is the version.
	out, err := run(disk("b2.raw", 0xB), map[string]interface{}{"packer_force": true})
	if err != nil {
		t.Fatal(err)
	}
	if out.State("blob_md5") == md5A || out.State("gallery_version_action_v2") != "replace" ||
		store.VersionDeletes.Load() != 1 || store.VersionCreates.Load() != 2 {
		t.Fatalf("force: md5 %v action %v, %d deletes, %d creates", out.State("blob_md5"), out.State("gallery_version_action_v2"),
			store.VersionDeletes.Load(), store.VersionCreates.Load())
	}
}
