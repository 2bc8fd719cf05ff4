package test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// One suite, two targets. The tests written against galleryTarget run
// unchanged against the local stand-ins (Azurite, armfake behind a
// loopback TLS server, a fake az) or, with OSIMAGE_LIVE_AZURE=1 (make
// testlive), against a real subscription, with the variables
// packer-plugin-azure's acceptance tests take:
//
//	ARM_SUBSCRIPTION_ID, ARM_RESOURCE_GROUP_NAME   where the test gallery is made
//	ARM_STORAGE_ACCOUNT                            an account in that group (its region is the gallery's)
//	ARM_CLIENT_ID, ARM_CLIENT_SECRET, ARM_TENANT_ID  a service principal (optional: else az login,
//	                                               OIDC, managed identity, as DefaultAzureCredential finds)
//	ARM_STORAGE_CONNECTION_STRING                  optional: storage by key instead of Azure AD
//	ARM_RESOURCE_PREFIX                            optional prefix of the names made (default osimageacc)
//
// A live target makes a gallery and a container of its own, named
// <prefix><unix time>, and deletes them (versions, definitions, gallery,
// container and blob) when the test ends, failed or not.
const liveEnv = "OSIMAGE_LIVE_AZURE"

type galleryTarget struct {
	Live bool
	// Gallery is where versions go; Location its region.
	Gallery gallery.Gallery
	// Region is the version's target region.
	Region string
	// Container holds the blobs; StorageAccountID is its account's id.
	Container, StorageAccountID string
	// Vars are the packer -var arguments of galleryTargetTemplate, Env the
	// environment packer needs.
	Vars, Env []string
	// Store is the stand-in (nil when live).
	Store *armfake.Store

	client gallery.Client
	blobs  *container.Client
}

func newGalleryTarget(t *testing.T) *galleryTarget {
	t.Helper()
	if os.Getenv(liveEnv) == "1" {
		return liveGalleryTarget(t)
	}
	return standInGalleryTarget(t)
}

// standInGalleryTarget is the local target, whatever OSIMAGE_LIVE_AZURE
// says (for tests of what only a stand-in can be made to do).
func standInGalleryTarget(t *testing.T) *galleryTarget {
	t.Helper()
	az, store := testsvc.StartAzurite(t), armfake.New()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	srv, _, extra := startARMFake(t, store)
	g := gallery.Gallery{SubscriptionID: "sub1", ResourceGroup: "rg1", Name: "gal1", Location: store.Location}
	c, err := gallery.NewARM(g.SubscriptionID, &azfake.TokenCredential{}, &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: store.Transport()}})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := container.NewClientFromConnectionString(az.ConnectionString, "osimage", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &galleryTarget{Gallery: g, Region: "eastus", Container: "osimage", Store: store, client: c, blobs: blobs,
		StorageAccountID: "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
		Vars: []string{"-var", "gallery_id=" + g.ID(), "-var", "arm=" + srv.URL + "/", "-var", "storage=" + az.ConnectionString,
			"-var", "container=osimage", "-var", "use_cli=true", "-var", "region=eastus", "-var", "replicas=2"},
		Env: extra}
}

func liveGalleryTarget(t *testing.T) *galleryTarget {
	t.Helper()
	need := func(k string) string {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s=1 needs %s (see TESTING.md, live Azure)", liveEnv, k)
		}
		return v
	}
	sub, rg, acct := need("ARM_SUBSCRIPTION_ID"), need("ARM_RESOURCE_GROUP_NAME"), need("ARM_STORAGE_ACCOUNT")
	var cred azcore.TokenCredential
	var err error
	oidcURL, oidcToken := os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if s := os.Getenv("ARM_CLIENT_SECRET"); s != "" {
		cred, err = azidentity.NewClientSecretCredential(need("ARM_TENANT_ID"), need("ARM_CLIENT_ID"), s, nil)
	} else if os.Getenv("ARM_CLIENT_ID") != "" && oidcURL != "" && oidcToken != "" {
		// In GitHub Actions: a fresh ID token for every token request, as
		// the plugin does, so the cleanup at the end still authenticates.
		cred, err = azidentity.NewClientAssertionCredential(need("ARM_TENANT_ID"), need("ARM_CLIENT_ID"), func(ctx context.Context) (string, error) {
			return githubIDToken(ctx, oidcURL, oidcToken)
		}, nil)
	} else {
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: os.Getenv("ARM_TENANT_ID")})
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := gallery.NewARM(sub, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	acctID := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s", sub, rg, acct)
	loc, err := c.StorageAccountLocation(ctx, acctID)
	if err != nil || loc == "" {
		t.Fatalf("ARM_STORAGE_ACCOUNT %s in %s: %q %v", acct, rg, loc, err)
	}
	name := fmt.Sprintf("%s%d", cmp.Or(os.Getenv("ARM_RESOURCE_PREFIX"), "osimageacc"), time.Now().Unix())
	g := gallery.Gallery{SubscriptionID: sub, ResourceGroup: rg, Name: name, Location: loc}
	f, err := armcompute.NewClientFactory(sub, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 5 * time.Second}
	gp, err := f.NewGalleriesClient().BeginCreateOrUpdate(ctx, rg, name, armcompute.Gallery{Location: &loc}, nil)
	if err == nil {
		_, err = gp.PollUntilDone(ctx, poll)
	}
	if err != nil {
		t.Fatalf("create the test gallery %s: %v", g.ID(), err)
	}
	t.Logf("live Azure: gallery %s in %s", g.ID(), loc)
	t.Cleanup(func() { deleteLiveGallery(t, f, g, poll) })

	tg := &galleryTarget{Live: true, Gallery: g, Region: loc, Container: name, StorageAccountID: acctID, client: c,
		Vars: []string{"-var", "gallery_id=" + g.ID(), "-var", "container=" + name, "-var", "region=" + loc, "-var", "replicas=1", "-var", "poll=15s",
			"-var", "client_id=" + os.Getenv("ARM_CLIENT_ID"), "-var", "tenant_id=" + os.Getenv("ARM_TENANT_ID"),
			"-var", "client_secret=" + os.Getenv("ARM_CLIENT_SECRET")}}
	if cs := os.Getenv("ARM_STORAGE_CONNECTION_STRING"); cs != "" {
		tg.Vars = append(tg.Vars, "-var", "storage="+cs)
		tg.blobs, err = container.NewClientFromConnectionString(cs, name, nil)
	} else {
		tg.Vars = append(tg.Vars, "-var", "storage_account="+acct)
		tg.blobs, err = container.NewClient(fmt.Sprintf("https://%s.blob.core.windows.net/%s", acct, name), cred, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := tg.blobs.Delete(context.Background(), nil); err != nil && !strings.Contains(err.Error(), "ContainerNotFound") {
			t.Errorf("delete the test container %s (delete it by hand): %v", name, err)
		}
	})
	return tg
}

// githubIDToken asks GitHub Actions' token service for an ID token for
// Microsoft Entra ID.
func githubIDToken(ctx context.Context, reqURL, reqToken string) (string, error) {
	u, err := url.Parse(reqURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("audience", "api://AzureADTokenExchange")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "bearer "+reqToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct{ Value string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Value == "" {
		return "", fmt.Errorf("ID token request: %s, %v", resp.Status, err)
	}
	return v.Value, nil
}

// deleteLiveGallery deletes what a live run made in its gallery, then the
// gallery; what it cannot delete it names.
func deleteLiveGallery(t *testing.T, f *armcompute.ClientFactory, g gallery.Gallery, poll *runtime.PollUntilDoneOptions) {
	ctx := context.Background()
	images, versions := f.NewGalleryImagesClient(), f.NewGalleryImageVersionsClient()
	pager := images.NewListByGalleryPager(g.ResourceGroup, g.Name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Errorf("list the definitions of %s (delete it by hand): %v", g.ID(), err)
			return
		}
		for _, d := range page.Value {
			vp := versions.NewListByGalleryImagePager(g.ResourceGroup, g.Name, *d.Name, nil)
			for vp.More() {
				vpage, err := vp.NextPage(ctx)
				if err != nil {
					t.Errorf("list the versions of %s: %v", *d.Name, err)
					break
				}
				for _, v := range vpage.Value {
					if p, err := versions.BeginDelete(ctx, g.ResourceGroup, g.Name, *d.Name, *v.Name, nil); err != nil {
						t.Errorf("delete version %s of %s: %v", *v.Name, *d.Name, err)
					} else if _, err := p.PollUntilDone(ctx, poll); err != nil {
						t.Errorf("delete version %s of %s: %v", *v.Name, *d.Name, err)
					}
				}
			}
			if p, err := images.BeginDelete(ctx, g.ResourceGroup, g.Name, *d.Name, nil); err != nil {
				t.Errorf("delete definition %s: %v", *d.Name, err)
			} else if _, err := p.PollUntilDone(ctx, poll); err != nil {
				t.Errorf("delete definition %s: %v", *d.Name, err)
			}
		}
	}
	if p, err := f.NewGalleriesClient().BeginDelete(ctx, g.ResourceGroup, g.Name, nil); err != nil {
		t.Errorf("delete the test gallery %s (delete it by hand): %v", g.ID(), err)
	} else if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Errorf("delete the test gallery %s (delete it by hand): %v", g.ID(), err)
	}
}

// Version reads a version through the same client code the plugin uses.
func (tg *galleryTarget) Version(t *testing.T, def, ver string) *armcompute.GalleryImageVersion {
	t.Helper()
	v, err := tg.client.GetVersion(context.Background(), tg.Gallery, def, ver)
	if err != nil {
		t.Fatalf("read version %s of %s: %v", ver, def, err)
	}
	return v
}

// PutDefinition makes a definition as if it existed before the build.
func (tg *galleryTarget) PutDefinition(t *testing.T, name string, d armcompute.GalleryImage) {
	t.Helper()
	if tg.Store != nil {
		tg.Store.PutDefinition(name, d)
		return
	}
	d.Location = &tg.Gallery.Location
	if err := tg.client.CreateDefinition(context.Background(), tg.Gallery, name, d, 5*time.Second); err != nil {
		t.Fatalf("create definition %s: %v", name, err)
	}
}

// Blobs lists the container's blob names (none when it does not exist).
func (tg *galleryTarget) Blobs(t *testing.T) []string {
	t.Helper()
	var out []string
	pager := tg.blobs.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			return out
		}
		for _, b := range page.Segment.BlobItems {
			out = append(out, *b.Name)
		}
	}
	return out
}

const galleryTargetTemplate = acc.RequiredPlugins + `
variable "raw" { type = string }
variable "out" { type = string }
variable "gallery_id" { type = string }
variable "region" { type = string }
variable "replicas" { type = number }
variable "container" { type = string }
variable "arm" {
  type    = string
  default = ""
}
variable "storage" {
  type      = string
  sensitive = true
  default   = ""
}
variable "storage_account" {
  type    = string
  default = ""
}
variable "use_cli" {
  type    = bool
  default = false
}
variable "client_id" {
  type    = string
  default = ""
}
variable "tenant_id" {
  type    = string
  default = ""
}
variable "client_secret" {
  type      = string
  sensitive = true
  default   = ""
}
variable "dry_run" {
  type    = bool
  default = false
}
variable "poll" {
  type    = string
  default = "1s"
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
          resource_urn   = var.gallery_id
          image_name     = "almalinux-9-gen2"
        }]
      })
      storage_connection_string = var.storage
      storage_account           = var.storage_account
      container                 = var.container
      create_container          = true
      blob_name                 = "alma-9.vhd"
      use_azure_cli_auth        = var.use_cli
      client_id                 = var.client_id
      tenant_id                 = var.tenant_id
      client_secret             = var.client_secret
      resource_manager_endpoint = var.arm
      hyperv_generations        = ["V1", "V2"]
      poll_interval             = var.poll
      dry_run                   = var.dry_run
      shared_image_gallery_destination {
        gen1_image_name = "almalinux-9-gen1"
        image_version   = "9.6.2025052201"
        target_region {
          name     = var.region
          replicas = var.replicas
        }
      }
    }
    post-processor "manifest" {
      output = "${var.out}/manifest.json"
    }
  }
}
`

// TestGalleryTargetPublishesGen1AndGen2FromOneBlobAndSkipsThemOnARerun
// runs against the stand-ins in make test and against Azure in make
// testlive: a dry run changes nothing, a build uploads the blob once and
// publishes a V1 and a V2 version from it, a second build reuses the blob
// and skips both versions.
func TestGalleryTargetPublishesGen1AndGen2FromOneBlobAndSkipsThemOnARerun(t *testing.T) {
	t.Parallel()
	env, tg := acc.Setup(t), newGalleryTarget(t)
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 40<<20+1234, map[int64][]byte{
		0:        bytes.Repeat([]byte{0xEB}, 512),
		20 << 20: bytes.Repeat([]byte("data"), 1<<18),
	})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "gallery.pkr.hcl", galleryTargetTemplate)
	vars := append([]string{"-var", "raw=" + raw, "-var", "out=" + out}, tg.Vars...)
	build := func(extra ...string) string {
		return env.MustRun(t, dir, tg.Env, append(append(append([]string{"build"}, vars...), extra...), ".")...).Output()
	}
	const ver = "9.6.2025052201"
	gid := tg.Gallery.ID()

	o := build("-var", "dry_run=true")
	for _, want := range []string{"dry run, not sent: PUT " + gid + "/images/almalinux-9-gen1?api-version=",
		"dry run, not sent: PUT " + gid + "/images/almalinux-9-gen2/versions/" + ver, `"name": "` + tg.Region + `"`,
		"dry run, not published:"} {
		if !strings.Contains(o, want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
	if len(tg.Blobs(t)) != 0 || tg.Version(t, "almalinux-9-gen2", ver) != nil {
		t.Fatal("the dry run changed something")
	}

	o = build()
	blobs := tg.Blobs(t)
	if len(blobs) != 1 || blobs[0] != "alma-9.vhd" {
		t.Fatalf("blobs %v\n%s", blobs, o)
	}
	for _, def := range []string{"almalinux-9-gen1", "almalinux-9-gen2"} {
		v := tg.Version(t, def, ver)
		if v == nil || *v.Properties.ProvisioningState != armcompute.GalleryProvisioningStateSucceeded ||
			!strings.HasSuffix(*v.Properties.StorageProfile.OSDiskImage.Source.URI, "/"+tg.Container+"/alma-9.vhd") ||
			!strings.EqualFold(*v.Properties.StorageProfile.OSDiskImage.Source.StorageAccountID, tg.StorageAccountID) {
			t.Fatalf("version in %s: %+v\n%s", def, v, o)
		}
		if !strings.Contains(o, gid+"/images/"+def+"/versions/"+ver+" (create; regions ") {
			t.Errorf("the build's summary does not name the version of %s:\n%s", def, o)
		}
	}
	if !strings.Contains(o, "/"+tg.Container+"/alma-9.vhd (MD5 ") {
		t.Errorf("the build's summary does not name the blob:\n%s", o)
	}
	m, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil || !strings.Contains(string(m), "/images/almalinux-9-gen2/versions/"+ver) {
		t.Fatalf("manifest: %v\n%s", err, m)
	}

	// Again (the file builder copies the disk anew, so its mtime and our
	// footer's timestamp change): the blob's footer is adopted, the blob is
	// reused and the versions are skipped.
	o = build()
	if !strings.Contains(o, "already published from this blob") || !strings.Contains(o, "already holds this disk") ||
		strings.Contains(o, "(create; regions") {
		t.Fatalf("second build:\n%s", o)
	}
	if tg.Store != nil && tg.Store.VersionCreates.Load() != 2 {
		t.Fatalf("%d versions created in all", tg.Store.VersionCreates.Load())
	}
}

// TestGalleryTargetStopsOnADefinitionMismatchBeforeUploading: a V1
// version goes into a definition that exists as V2: the build stops
// before anything is uploaded or created.
func TestGalleryTargetStopsOnADefinitionMismatchBeforeUploading(t *testing.T) {
	t.Parallel()
	env, tg := acc.Setup(t), newGalleryTarget(t)
	linux, generalized, v2 := armcompute.OperatingSystemTypesLinux, armcompute.OperatingSystemStateTypesGeneralized, armcompute.HyperVGenerationV2
	tg.PutDefinition(t, "almalinux-9-gen1", armcompute.GalleryImage{Properties: &armcompute.GalleryImageProperties{
		OSType: &linux, OSState: &generalized, HyperVGeneration: &v2,
		Identifier: &armcompute.GalleryImageIdentifier{Publisher: ptr("osimage-acc"), Offer: ptr("mismatch"), SKU: ptr("v2")}}})
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "in.raw"), 8<<20, map[int64][]byte{0: []byte("boot")})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	acc.WriteTemplate(t, dir, "gallery.pkr.hcl", galleryTargetTemplate)
	r := env.Run(t, dir, tg.Env, append(append([]string{"build", "-var", "raw=" + raw, "-var", "out=" + out}, tg.Vars...), ".")...)
	if r.Err == nil || !strings.Contains(r.Output(), "almalinux-9-gen1 has hyperv generation V2, but this image needs V1") {
		t.Fatalf("want a mismatch error:\n%s", r.Output())
	}
	if len(tg.Blobs(t)) != 0 || tg.Version(t, "almalinux-9-gen2", "9.6.2025052201") != nil {
		t.Fatal("something was uploaded or created before the mismatch stopped the build")
	}
}
