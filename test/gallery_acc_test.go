package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// fakeAzureCLI puts an `az` on PATH that hands out a token the way
// `az account get-access-token` does: the plugin's real azidentity CLI
// credential runs it.
func fakeAzureCLI(t *testing.T, dir string) []string {
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	script := "#!/bin/sh\necho '{\"accessToken\":\"fake-token\",\"expiresOn\":\"2099-12-31 00:00:00.000000\",\"expires_on\":4102358400,\"subscription\":\"sub1\",\"tenant\":\"tenant1\",\"tokenType\":\"Bearer\"}'\n"
	if err := os.WriteFile(filepath.Join(bin, "az"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
}

// The build that publishes gen1 and gen2 from one blob and skips both on
// a rerun is TestGalleryTargetPublishesGen1AndGen2FromOneBlobAndSkipsThemOnARerun
// (gallery_target_test.go), which also runs against Azure.

// The build stopped by a definition of the wrong generation before the
// upload is TestGalleryTargetStopsOnADefinitionMismatchBeforeUploading
// (gallery_target_test.go), which also runs against Azure.

// startARMFake serves store as Azure Resource Manager on loopback TLS and
// returns the server, a temporary directory and the environment packer
// needs: a fake az on PATH and the server's CA in SSL_CERT_FILE.
func startARMFake(t *testing.T, store *armfake.Store) (*armfake.Server, string, []string) {
	t.Helper()
	// The account of Azurite's blobs, where the post-processor's default
	// resource id puts it (the gallery's resource group), in its region.
	store.PutStorageAccount("/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/devstoreaccount1", store.Location)
	store.PutStorageAccount("/subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/devstoreaccount1", store.Location)
	srv := armfake.NewServer(store)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "arm.pem")
	if err := os.WriteFile(ca, srv.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, dir, append(fakeAzureCLI(t, dir), "SSL_CERT_FILE="+ca)
}

func ptr[T any](v T) *T { return &v }

// twoTargetsTemplate is galleryTargetTemplate with a second gallery target
// in the variant and the `target` option from a variable.
var twoTargetsTemplate = strings.NewReplacer(
	`          image_name     = "almalinux-9-gen2"
        }]`, `          image_name     = "almalinux-9-gen2"
        }, {
          name           = "acg-test"
          interface_type = "azure-compute-gallery"
          resource_urn   = "/subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Compute/galleries/test"
          image_name     = "alma-test"
        }]`,
	`      storage_connection_string = var.storage`, `      target                    = var.target
      storage_connection_string = var.storage`,
	`variable "raw" { type = string }`, `variable "raw" { type = string }
variable "target" {
  type    = string
  default = ""
}`,
).Replace(galleryTargetTemplate)

// TestPackerBuildWithTwoGalleryTargetsPublishesOnlyToTheOneNamed runs on
// the stand-ins only: its second target is a gallery that does not exist.
func TestPackerBuildWithTwoGalleryTargetsPublishesOnlyToTheOneNamed(t *testing.T) {
	t.Parallel()
	if !strings.Contains(twoTargetsTemplate, "acg-test") || !strings.Contains(twoTargetsTemplate, "var.target") {
		t.Fatal("the template was not rewritten: galleryTargetTemplate changed")
	}
	env, tg := acc.Setup(t), standInGalleryTarget(t)
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 8<<20, map[int64][]byte{0: []byte("boot")})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "gallery.pkr.hcl", twoTargetsTemplate)
	vars := append([]string{"build", "-var", "raw=" + raw, "-var", "out=" + out}, tg.Vars...)

	r := env.Run(t, dir, tg.Env, append(vars, ".")...)
	if r.Err == nil || !strings.Contains(r.Output(), "variant alma-9-x86_64 has 2 azure-compute-gallery targets (acg, acg-test): choose one with target") {
		t.Fatalf("want an error naming both targets:\n%s", r.Output())
	}
	if len(tg.Blobs(t)) != 0 || tg.Store.DefinitionCreates.Load()+tg.Store.VersionCreates.Load() != 0 {
		t.Fatal("something was uploaded or created although no target was chosen")
	}

	r = env.MustRun(t, dir, tg.Env, append(vars, "-var", "target=acg-test", "-var", "dry_run=true", ".")...)
	if !strings.Contains(r.Output(), "dry run, not sent: PUT /subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Compute/galleries/test/images/alma-test/versions/9.6.2025052201") ||
		strings.Contains(r.Output(), "galleries/gal1/images") {
		t.Fatalf("target = acg-test should publish into gallery test only:\n%s", r.Output())
	}
}
