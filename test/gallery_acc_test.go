package test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

const galleryTemplate = acc.RequiredPlugins + `
variable "raw" { type = string }
variable "out" { type = string }
variable "arm" { type = string }
variable "storage" {
  type      = string
  sensitive = true
}
variable "dry_run" {
  type    = bool
  default = false
}

source "file" "disk" {
  source = var.raw
  target = "${var.out}/disk.raw"
}

build {
  sources = ["source.file.disk"]

  post-processors {
    post-processor "osimage-gallery" {
      variant = jsonencode({
        key         = "alma-9-x86_64"
        image       = "almalinux"
        distro      = "almalinux"
        release_ver = "9.6"
        arch        = "x86_64"
        targets = [{
          name           = "acg"
          interface_type = "azure-compute-gallery"
          backend        = "azure-compute-gallery"
          resource_urn   = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/gal1"
          image_name     = "almalinux-9-gen2"
        }]
      })
      storage_connection_string = var.storage
      create_container          = true
      blob_name                 = "alma-9.vhd"
      use_azure_cli_auth        = true
      resource_manager_endpoint = var.arm
      hyperv_generations        = ["V1", "V2"]
      poll_interval             = "1s"
      dry_run                   = var.dry_run
      shared_image_gallery_destination {
        gen1_image_name = "almalinux-9-gen1"
        image_version   = "9.6.2025052201"
        target_region {
          name     = "eastus"
          replicas = 2
        }
      }
    }
    post-processor "manifest" {
      output = "${var.out}/manifest.json"
    }
  }
}
`

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

func countBlobs(t *testing.T, az *testsvc.Azurite) int {
	t.Helper()
	cl, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	pager := cl.NewListBlobsFlatPager("osimage", nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			return n
		}
		n += len(page.Segment.BlobItems)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// twoTargetsTemplate is galleryTemplate with a second gallery target in the
// variant and the `target` option from a variable.
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
).Replace(galleryTemplate)

func TestPackerBuildWithTwoGalleryTargetsPublishesOnlyToTheOneNamed(t *testing.T) {
	t.Parallel()
	if !strings.Contains(twoTargetsTemplate, "acg-test") || !strings.Contains(twoTargetsTemplate, "var.target") {
		t.Fatal("the template was not rewritten: galleryTemplate changed")
	}
	env, az, store := acc.Setup(t), testsvc.StartAzurite(t), armfake.New()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	srv, dir, extra := startARMFake(t, store)
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 8<<20, map[int64][]byte{0: []byte("boot")})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "gallery.pkr.hcl", twoTargetsTemplate)
	vars := []string{"build", "-var", "raw=" + raw, "-var", "out=" + out, "-var", "arm=" + srv.URL + "/", "-var", "storage=" + az.ConnectionString}

	r := env.Run(t, dir, extra, append(vars, ".")...)
	if r.Err == nil || !strings.Contains(r.Output(), "variant alma-9-x86_64 has 2 azure-compute-gallery targets (acg, acg-test): choose one with target") {
		t.Fatalf("want an error naming both targets:\n%s", r.Output())
	}
	if countBlobs(t, az) != 0 || store.DefinitionCreates.Load()+store.VersionCreates.Load() != 0 {
		t.Fatal("something was uploaded or created although no target was chosen")
	}

	r = env.MustRun(t, dir, extra, append(vars, "-var", "target=acg-test", "-var", "dry_run=true", ".")...)
	if !strings.Contains(r.Output(), "dry run, not sent: PUT /subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Compute/galleries/test/images/alma-test/versions/9.6.2025052201") ||
		strings.Contains(r.Output(), "galleries/gal1/images") {
		t.Fatalf("target = acg-test should publish into gallery test only:\n%s", r.Output())
	}
}
