package gallery

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testGalleryID = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Compute/galleries/gal1"

func TestResolveDestinationMergesExplicitSettingsOverTheTarget(t *testing.T) {
	tgt := func(urn, image string) *Target { return &Target{Name: "acg", ResourceURN: urn, ImageName: image} }
	gal := func(sub, rg, name string) Gallery { return Gallery{SubscriptionID: sub, ResourceGroup: rg, Name: name} }
	explicit := DestinationSettings{ResourceGroup: "r2", GalleryName: "g2", ImageName: "def"}
	for _, c := range []struct {
		name    string
		req     DestinationRequest
		want    *Destination // nil with wantErr "": upload only
		wantErr string
	}{
		{name: "the target alone gives gallery and V2 definition",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma-gen2")},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma-gen2"}}},
		{name: "every explicit field wins over the target",
			req: DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"),
				Settings: DestinationSettings{Subscription: "s2", ResourceGroup: "r2", GalleryName: "g2", ImageName: "def", Location: "westus"}},
			want: &Destination{Gallery: Gallery{SubscriptionID: "s2", ResourceGroup: "r2", Name: "g2", Location: "westus"}, Generations: []string{"V2"}, Names: map[string]string{"V2": "def"}}},
		{name: "an explicit subscription alone replaces only the subscription",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Settings: DestinationSettings{Subscription: "s2"}},
			want: &Destination{Gallery: gal("s2", "rg1", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma-gen2"}}},
		{name: "an explicit resource group alone replaces only the resource group",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Settings: DestinationSettings{ResourceGroup: "r2"}},
			want: &Destination{Gallery: gal("sub1", "r2", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma-gen2"}}},
		{name: "an explicit gallery name alone replaces only the name",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Settings: DestinationSettings{GalleryName: "g2"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "g2"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma-gen2"}}},
		{name: "an explicit image name alone replaces only the definition",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Settings: DestinationSettings{ImageName: "def"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "def"}}},
		{name: "the default subscription does not replace the resource id's",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Settings: DestinationSettings{DefaultSubscription: "s3"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma-gen2"}}},
		{name: "the default subscription fills in when nothing else gives one",
			req:  DestinationRequest{Settings: DestinationSettings{ResourceGroup: "r2", GalleryName: "g2", ImageName: "def", DefaultSubscription: "s3"}},
			want: &Destination{Gallery: gal("s3", "r2", "g2"), Generations: []string{"V2"}, Names: map[string]string{"V2": "def"}}},
		{name: "the explicit subscription wins over the default one",
			req:  DestinationRequest{Settings: DestinationSettings{Subscription: "s2", ResourceGroup: "r2", GalleryName: "g2", ImageName: "def", DefaultSubscription: "s3"}},
			want: &Destination{Gallery: gal("s2", "r2", "g2"), Generations: []string{"V2"}, Names: map[string]string{"V2": "def"}}},
		{name: "no target and no gallery name is upload only",
			req: DestinationRequest{Settings: DestinationSettings{Subscription: "s2", ResourceGroup: "r2", ImageName: "def"}}},
		{name: "a target without resource id is upload only",
			req: DestinationRequest{Target: tgt("", "alma-gen2")}},
		{name: "a target whose values are left to the publish step is upload only",
			req: DestinationRequest{Target: tgt("*", "*")}},
		{name: "explicit fields complete a target whose values are left to the publish step",
			req:  DestinationRequest{Target: tgt("*", "*"), Settings: DestinationSettings{Subscription: "s2", ResourceGroup: "r2", GalleryName: "g2", ImageName: "def"}},
			want: &Destination{Gallery: gal("s2", "r2", "g2"), Generations: []string{"V2"}, Names: map[string]string{"V2": "def"}}},
		{name: "an image name left to the publish step is no name",
			req:     DestinationRequest{Target: tgt(testGalleryID, "*")},
			wantErr: "shared_image_gallery_destination.image_name: no image definition name"},
		{name: "a gallery without subscription is an error",
			req:     DestinationRequest{Settings: explicit},
			wantErr: "shared_image_gallery_destination: gallery g2 needs subscription and resource_group"},
		{name: "a gallery without resource group is an error",
			req:     DestinationRequest{Settings: DestinationSettings{Subscription: "s2", GalleryName: "g2", ImageName: "def"}},
			wantErr: "gallery g2 needs subscription and resource_group"},
		{name: "a gallery without definition name is an error",
			req:     DestinationRequest{Target: tgt(testGalleryID, "")},
			wantErr: "image_name: no image definition name (and the variant's azure-compute-gallery target gives none)"},
		{name: "a malformed resource id names the variant and target",
			req:     DestinationRequest{Variant: "k1", Target: tgt("/subscriptions/x", "alma-gen2")},
			wantErr: `variant k1 target acg: resource_urn: gallery id "/subscriptions/x"`},
		{name: "x86_64 with both generations puts V1 into gen1_image_name and V2 into image_name",
			req: DestinationRequest{Arch: "x86_64", Target: tgt(testGalleryID, "alma-gen2"), Generations: []string{"V1", "V2"},
				Settings: DestinationSettings{Gen1ImageName: "alma-gen1"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V1", "V2"}, Names: map[string]string{"V1": "alma-gen1", "V2": "alma-gen2"}}},
		{name: "the generations keep the order asked",
			req: DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Generations: []string{"gen2", "1"},
				Settings: DestinationSettings{Gen1ImageName: "alma-gen1"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V2", "V1"}, Names: map[string]string{"V1": "alma-gen1", "V2": "alma-gen2"}}},
		{name: "both generations without gen1_image_name is an error",
			req:     DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Generations: []string{"V1", "V2"}},
			wantErr: "hyperv_generations [V1 V2]: give shared_image_gallery_destination.gen1_image_name, the definition of the V1 version (image_name alma-gen2 takes V2)"},
		{name: "V1 alone goes into image_name",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma"), Generations: []string{"V1"}, Settings: DestinationSettings{Gen1ImageName: "unused"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V1"}, Names: map[string]string{"V1": "alma"}}},
		{name: "the variant's generation applies when none is asked",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma"), VariantGeneration: "V1"},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V1"}, Names: map[string]string{"V1": "alma"}}},
		{name: "generations asked win over the variant's",
			req:  DestinationRequest{Target: tgt(testGalleryID, "alma"), Generations: []string{"V2"}, VariantGeneration: "V1"},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma"}}},
		{name: "no arch means x86_64, which may publish V1",
			req: DestinationRequest{Target: tgt(testGalleryID, "alma-gen2"), Generations: []string{"V1", "V2"},
				Settings: DestinationSettings{Gen1ImageName: "alma-gen1"}},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V1", "V2"}, Names: map[string]string{"V1": "alma-gen1", "V2": "alma-gen2"}}},
		{name: "aarch64 defaults to V2",
			req:  DestinationRequest{Arch: "aarch64", Target: tgt(testGalleryID, "alma-arm")},
			want: &Destination{Gallery: gal("sub1", "rg1", "gal1"), Generations: []string{"V2"}, Names: map[string]string{"V2": "alma-arm"}}},
		{name: "aarch64 refuses V1 asked",
			req: DestinationRequest{Arch: "aarch64", Target: tgt(testGalleryID, "alma-arm"), Generations: []string{"V1", "V2"},
				Settings: DestinationSettings{Gen1ImageName: "alma-gen1"}},
			wantErr: "hyperv_generations: V1 for aarch64: Azure runs Arm64 images as V2 only"},
		{name: "aarch64 refuses a V1 variant",
			req:     DestinationRequest{Arch: "aarch64", Target: tgt(testGalleryID, "alma-arm"), VariantGeneration: "V1"},
			wantErr: "V2 only"},
		{name: "an unknown generation is an error",
			req:     DestinationRequest{Target: tgt(testGalleryID, "alma"), Generations: []string{"V3"}},
			wantErr: `hyperv generation "V3": want V1 or V2`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ResolveDestination(c.req)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				if got != nil {
					t.Fatalf("destination %+v returned with the error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDestinationDefinitionsFollowTheGenerationsOrder(t *testing.T) {
	d := &Destination{Generations: []string{"V2", "V1"}, Names: map[string]string{"V1": "a", "V2": "b"}}
	if got := d.Definitions(); !reflect.DeepEqual(got, []string{"b", "a"}) {
		t.Fatalf("got %v", got)
	}
	if got := (&Destination{}).Definitions(); len(got) != 0 {
		t.Fatalf("no generations: %v", got)
	}
}

func TestDefaultBlobNameIsTheVariantKeyAndTheDiskTimeInUTC(t *testing.T) {
	mod := time.Date(2026, 11, 30, 13, 4, 5, 999, time.FixedZone("x", 5*3600))
	for _, c := range []struct {
		key, path string
		mod       time.Time
		want      string
	}{
		{"alma-9-x86_64", "/b/disk.raw", mod, "alma-9-x86_64-20261130080405.vhd"},
		{"alma-9-x86_64", "/b/disk.raw", mod.Add(time.Second), "alma-9-x86_64-20261130080406.vhd"},
		{"", "/b/disk.raw", mod, "disk-20261130080405.vhd"},
		{"", "/b/my.disk.vhd", mod, "my.disk-20261130080405.vhd"},
		{"k", "/b/disk.raw", time.Time{}, "k-0.vhd"},
	} {
		if got := DefaultBlobName(c.key, c.path, c.mod, ""); got != c.want {
			t.Errorf("DefaultBlobName(%q, %q, %v) = %q, want %q", c.key, c.path, c.mod, got, c.want)
		}
	}
}

func TestDefaultBlobNameIsTheDisksDigestWhenKnown(t *testing.T) {
	sum := "0F343B0931126A20f133d67c2b018a3b5e2b1b1b5e2f2a8c7d0b6f0e1f2a3b4c"
	mod := time.Date(2026, 11, 30, 13, 4, 5, 0, time.UTC)
	if got := DefaultBlobName("alma", "/b/disk.raw", mod, sum); got != "alma-0f343b0931126a20.vhd" {
		t.Fatalf("got %q", got)
	}
	if got := DefaultBlobName("alma", "/b/disk.raw", mod.Add(time.Hour), " "+sum); got != "alma-0f343b0931126a20.vhd" {
		t.Fatalf("another copy of the same disk: %q", got)
	}
	if got := DefaultBlobName("alma", "/b/disk.raw", mod, "0f343b0931126a20"); got != "alma-0f343b0931126a20.vhd" {
		t.Fatalf("16 hex digits: %q", got)
	}
	if got := DefaultBlobName("alma", "/b/disk.raw", mod, "abc"); got != "alma-20261130130405.vhd" {
		t.Fatalf("a digest too short to be one: %q", got)
	}
}

func TestAccountFromBlobURL(t *testing.T) {
	for ep, want := range map[string]string{"https://acct.blob.core.windows.net": "acct", "http://127.0.0.1:10000/devstoreaccount1": "devstoreaccount1",
		"https://acct.blob.core.windows.net/c/b.vhd": "acct", "http://127.0.0.1:1/dev1/c/b.vhd": "dev1", "": "", "http://localhost:2/a/b": "a"} {
		if got := AccountFromBlobURL(ep); got != want {
			t.Errorf("%s: %s", ep, got)
		}
	}
}

func TestStorageAccountIDIsTheGivenOneOrBuiltFromTheAccountInTheGallerysSubscription(t *testing.T) {
	g := Gallery{SubscriptionID: "sub1", ResourceGroup: "rg1", Name: "gal1"}
	const acct = "/subscriptions/sub1/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s"
	for _, c := range []struct{ id, account, rg, url, want string }{
		{"/given/id", "a", "r", "https://x.blob.core.windows.net/c/b.vhd", "/given/id"},
		{"", "a", "", "https://x.blob.core.windows.net/c/b.vhd", fmt.Sprintf(acct, "rg1", "a")},
		{"", "", "", "https://x.blob.core.windows.net/c/b.vhd", fmt.Sprintf(acct, "rg1", "x")},
		{"", "", "st-rg", "http://127.0.0.1:10000/devstoreaccount1/c/b.vhd", fmt.Sprintf(acct, "st-rg", "devstoreaccount1")},
	} {
		if got := StorageAccountID(c.id, c.account, c.rg, c.url, g); got != c.want {
			t.Errorf("StorageAccountID(%q, %q, %q, %q) = %s, want %s", c.id, c.account, c.rg, c.url, got, c.want)
		}
	}
}
