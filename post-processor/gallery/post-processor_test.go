package gallery

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

const galleryID = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/gal1"

func configure(t *testing.T, raw map[string]interface{}) (*PostProcessor, error) {
	t.Helper()
	p := &PostProcessor{}
	raw["packer_build_name"] = "b1"
	return p, p.Configure(raw)
}

// storageID is the resource id the post-processor gives the development
// account of Azurite for the gallery of galleryID.
const storageID = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/devstoreaccount1"

// newStore is an empty gallery in westeurope with the storage account
// that holds the blobs, in the same region.
func newStore() *armfake.Store {
	s := armfake.New()
	s.PutStorageAccount(storageID, "westeurope")
	return s
}

func almaVariant(arch string) variant.Variant {
	return variant.Variant{Key: "alma-9-" + arch, Image: "almalinux", Distro: "almalinux", ReleaseVer: "9.6", Arch: arch,
		Targets: []variant.Target{{Name: "acg", InterfaceType: variant.InterfaceAzureComputeGallery, ResourceURN: galleryID, ImageName: "almalinux-9-gen2"}}}
}

func TestPostProcessUploadsOnceAndPublishesGen1AndGen2FromTheVariantTarget(t *testing.T) {
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "disk.raw"), 30<<20+5, map[int64][]byte{0: bytes.Repeat([]byte{1}, 4096), 20 << 20: bytes.Repeat([]byte{2}, 1<<20)})
	in := &artifact.Artifact{Builder: "packer.file", Variant: almaVariant("x86_64"), Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	p, err := configure(t, map[string]interface{}{
		"storage_connection_string": az.ConnectionString, "storage_account": "devstoreaccount1", "create_container": true,
		"hyperv_generations":               []string{"V1", "V2"},
		"shared_image_gallery_destination": map[string]interface{}{"gen1_image_name": "almalinux-9-gen1", "target_region": []map[string]interface{}{{"name": "eastus"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.config.PollInterval = 10 * time.Millisecond // under go test azcore polls this often
	store := newStore()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	p.armTransport, p.credential = store.Transport(), &azfake.TokenCredential{}
	out, keep, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if !keep {
		t.Fatal("input not kept")
	}
	url := out.State("blob_url").(string)
	if !strings.HasPrefix(url, az.BlobURL+"/osimage/alma-9-x86_64-") || len(out.State("blob_md5").(string)) != 32 {
		t.Fatalf("blob %s md5 %v", url, out.State("blob_md5"))
	}
	for gen, def := range map[string]string{"v1": "almalinux-9-gen1", "v2": "almalinux-9-gen2"} {
		id := out.State("gallery_version_id_" + gen)
		if id != galleryID+"/images/"+def+"/versions/9.6."+out.State("gallery_image_version").(string)[4:] {
			t.Errorf("%s id %v", gen, id)
		}
		if out.State("gallery_version_regions_"+gen) != "westeurope,eastus" {
			t.Errorf("%s regions %v", gen, out.State("gallery_version_regions_"+gen))
		}
		d, ok := store.Definition(def)
		if !ok || string(*d.Properties.HyperVGeneration) != strings.ToUpper(gen) || *d.Properties.Identifier.Publisher != "almalinux" {
			t.Errorf("definition %s: %+v", def, d.Properties)
		}
		v, _ := store.Version(def, out.State("gallery_image_version").(string))
		if src := v.Properties.StorageProfile.OSDiskImage.Source; *src.URI != url ||
			*src.StorageAccountID != "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/devstoreaccount1" {
			t.Errorf("source %s %s", *src.URI, *src.StorageAccountID)
		}
	}
	if hcp := out.State("par.artifact.metadata"); hcp == nil {
		t.Error("no HCP Packer metadata")
	}

	// Again: blob reused, versions skipped (the scheme finds the version
	// of this blob), nothing created.
	out2, _, _, err := p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if out2.State("blob_reused") != "true" || out2.State("gallery_version_action_v1") != "skip" ||
		out2.State("gallery_image_version") != out.State("gallery_image_version") || store.VersionCreates.Load() != 2 {
		t.Fatalf("second run: reused %v action %v version %v creates %d", out2.State("blob_reused"), out2.State("gallery_version_action_v1"), out2.State("gallery_image_version"), store.VersionCreates.Load())
	}
}

func TestPostProcessStopsOnADefinitionMismatchBeforeUploading(t *testing.T) {
	az := testsvc.StartAzurite(t)
	dir := t.TempDir()
	raw := testutil.SparseFile(t, filepath.Join(dir, "disk.raw"), 4<<20, map[int64][]byte{0: []byte("x")})
	in := &artifact.Artifact{Builder: "packer.file", Variant: almaVariant("aarch64"), Outputs: []artifact.File{{Path: raw, Role: artifact.RoleDisk}}}
	p, err := configure(t, map[string]interface{}{"storage_connection_string": az.ConnectionString, "create_container": true,
		"shared_image_gallery_destination": map[string]interface{}{"image_version": "1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	store := newStore()
	store.SourceBlobType = armfake.AzuriteBlobType(az.ConnectionString)
	store.PutDefinition("almalinux-9-gen2", armcompute.GalleryImage{Properties: &armcompute.GalleryImageProperties{
		OSType: ptr(armcompute.OperatingSystemTypesLinux), OSState: ptr(armcompute.OperatingSystemStateTypesGeneralized),
		HyperVGeneration: ptr(armcompute.HyperVGenerationV2), Architecture: ptr(armcompute.ArchitectureX64)}})
	p.armTransport, p.credential = store.Transport(), &azfake.TokenCredential{}
	_, _, _, err = p.PostProcess(context.Background(), packersdk.TestUi(t), in)
	if err == nil || !strings.Contains(err.Error(), "architecture x64, but this image needs Arm64") {
		t.Fatalf("got %v", err)
	}
	pager := newContainerPager(t, az)
	if pager != 0 {
		t.Fatalf("%d blobs uploaded before the mismatch was found", pager)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := configure(t, map[string]interface{}{
		"shared_image_gallery_destination": map[string]interface{}{"image_version": "1.2.9999999999", "storage_account_type": "Cheap",
			"target_region": []map[string]interface{}{{"name": "x", "replicas": 101}, {"replicas": 1}}},
		"hyperv_generations": []string{"V3"}, "client_secret": "s3cr3t", "parallel": 500,
		"shared_gallery_image_version_end_of_life_date": "tomorrow", "resource_manager_endpoint": "http://x",
		"cloud_environment_name": "Mars", "variant": "{not json", "poll_interval": "500ms", "security_type": "TrustedLaunchSupport",
		"disk_controller_types": "SCSI, IDE",
	})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"storage_account: required", "image_version", "exceeds 2147483647", `storage_account_type "Cheap"`,
		"replicas = 101", "target_region[1]: name is required", `hyperv generation "V3"`, "client_secret needs client_id",
		"parallel = 500", `end_of_life_date "tomorrow"`, "want an https URL", `cloud_environment_name "Mars"`, "variant",
		"poll_interval = 500ms: want at least 1s", `security_type "TrustedLaunchSupport": want one of Standard,`,
		`disk_controller_types: disk controller type "IDE"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Error("the secret was printed")
	}
}

func TestShallowReplicationAndNVMeOnV1AreRefusedAtValidate(t *testing.T) {
	dest := func(loc string, regions ...map[string]interface{}) map[string]interface{} {
		return map[string]interface{}{"use_shallow_replication": true, "location": loc, "target_region": regions}
	}
	for name, c := range map[string]struct {
		raw  map[string]interface{}
		want string
	}{
		"two regions": {map[string]interface{}{"shared_image_gallery_destination": dest("", map[string]interface{}{"name": "eastus"}, map[string]interface{}{"name": "westus"})},
			"use_shallow_replication: Azure allows it in the gallery's region only; 2 target_region blocks given"},
		"two replicas": {map[string]interface{}{"shared_image_gallery_destination": dest("", map[string]interface{}{"name": "eastus", "replicas": 2})},
			`target_region "eastus": replicas = 2, want 1`},
		"another region": {map[string]interface{}{"shared_image_gallery_destination": dest("westeurope", map[string]interface{}{"name": "eastus"})},
			`target_region "eastus" is not the gallery's region "westeurope"`},
		"NVMe on V1": {map[string]interface{}{"hyperv_generations": []string{"V1", "V2"}, "disk_controller_types": "SCSI,NVMe"},
			`disk_controller_types "SCSI,NVMe" with hyperv_generations [V1 V2]: NVMe needs generation V2`},
	} {
		t.Run(name, func(t *testing.T) {
			c.raw["storage_account"] = "a"
			if _, err := configure(t, c.raw); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	ok := map[string]interface{}{"storage_account": "a", "hyperv_generations": []string{"V1", "V2"},
		"shared_image_gallery_destination": dest("West Europe", map[string]interface{}{"name": "westeurope"})}
	if _, err := configure(t, ok); err != nil {
		t.Fatal(err)
	}
}

func TestDestinationTakesTheOnlyGalleryTargetAndPassesEveryField(t *testing.T) {
	v := almaVariant("x86_64")
	v.Targets = append(v.Targets, variant.Target{Name: "reg", InterfaceType: variant.InterfaceOCIRegistry, ResourceURN: "ghcr.io"})
	v.HyperVGeneration = "V1"
	c := &Config{}
	d, err := c.destination(&v)
	if err != nil || d.Gallery.ID() != galleryID || !reflect.DeepEqual(d.Names, map[string]string{"V1": "almalinux-9-gen2"}) {
		t.Fatalf("variant target and generation: %+v %v", d, err)
	}
	c = &Config{SubscriptionID: "s3", gens: []string{"V1", "V2"}, Destination: GalleryDestination{ResourceGroup: "r2", GalleryName: "g2",
		Location: "westus", ImageName: "def2", Gen1ImageName: "def1"}}
	d, err = c.destination(&variant.Variant{Key: "k"})
	want := &gallery.Destination{Gallery: gallery.Gallery{SubscriptionID: "s3", ResourceGroup: "r2", Name: "g2", Location: "westus"},
		Generations: []string{"V1", "V2"}, Names: map[string]string{"V1": "def1", "V2": "def2"}}
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Fatalf("explicit fields: %+v %v", d, err)
	}
	c.Destination.Subscription = "s2"
	if d, _ := c.destination(&variant.Variant{Key: "k"}); d.Gallery.SubscriptionID != "s2" {
		t.Fatalf("subscription: %+v", d.Gallery)
	}
	arm := almaVariant("aarch64")
	if _, err := c.destination(&arm); err == nil || !strings.Contains(err.Error(), "V2 only") {
		t.Fatalf("aarch64 into V1: %v", err)
	}
}

func TestDestinationWithSeveralGalleryTargetsNeedsTarget(t *testing.T) {
	v := almaVariant("x86_64")
	v.Targets = append(v.Targets, variant.Target{Name: "acg-test", InterfaceType: variant.InterfaceAzureComputeGallery,
		ResourceURN: "/subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Compute/galleries/test", ImageName: "alma-test"})
	_, err := (&Config{}).destination(&v)
	if err == nil || !strings.Contains(err.Error(), "2 azure-compute-gallery targets (acg, acg-test): choose one with target") {
		t.Fatalf("several targets, none named: %v", err)
	}
	d, err := (&Config{TargetName: "acg-test"}).destination(&v)
	if err != nil || d.Gallery.Name != "test" || d.Names["V2"] != "alma-test" {
		t.Fatalf("target = acg-test: %+v %v", d, err)
	}
	if _, err := (&Config{TargetName: "nope"}).destination(&v); err == nil || !strings.Contains(err.Error(), `target = "nope"`) {
		t.Fatalf("unknown target: %v", err)
	}
}

func TestConfigTargetNamesTheGalleryTarget(t *testing.T) {
	p, err := configure(t, map[string]interface{}{"storage_account": "a", "target": "acg-test"})
	if err != nil || p.config.TargetName != "acg-test" {
		t.Fatalf("%q %v", p.config.TargetName, err)
	}
}

func ptr[T any](v T) *T { return &v }

func newContainerPager(t *testing.T, az *testsvc.Azurite) int {
	t.Helper()
	cl, err := azblobClient(az.ConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	pager := cl.NewListBlobsFlatPager("osimage", nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			return 0 // no container: nothing uploaded
		}
		n += len(page.Segment.BlobItems)
	}
	return n
}
