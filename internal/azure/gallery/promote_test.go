package gallery

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
)

const galleryID = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"

func storedVersion(s *armfake.Store, def, ver string, exclude bool, regionsExclude ...bool) {
	var regions []*armcompute.TargetRegion
	for i, e := range regionsExclude {
		regions = append(regions, &armcompute.TargetRegion{Name: ptr([]string{"eastus", "westus2"}[i]), ExcludeFromLatest: ptr(e)})
	}
	s.PutVersion(def, ver, armcompute.GalleryImageVersion{Properties: &armcompute.GalleryImageVersionProperties{
		ProvisioningState: ptr(armcompute.GalleryProvisioningStateSucceeded),
		StorageProfile:    &armcompute.GalleryImageVersionStorageProfile{OSDiskImage: &armcompute.GalleryOSDiskImage{Source: &armcompute.GalleryDiskImageSource{URI: ptr("https://a.blob.core.windows.net/c/d.vhd")}}},
		PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{ExcludeFromLatest: ptr(exclude), TargetRegions: regions},
	}})
}

func TestPromotePutsPreReleasedVersionsIntoLatestOnce(t *testing.T) {
	s := armfake.New()
	storedVersion(s, "d1", "1.0.1", true, true, true)
	storedVersion(s, "d2", "1.0.1", false, false, true) // one region still excluded
	storedVersion(s, "d3", "1.0.1", false, false)
	c := client(t, s)
	ids := []string{galleryID + "/images/d1/versions/1.0.1", galleryID + "/images/d2/versions/1.0.1", galleryID + "/images/d3/versions/1.0.1"}
	var log []string
	o := fastOpts(t)
	o.Logf = func(f string, a ...any) { log = append(log, strings.TrimSpace(f)) }
	changed, err := Promote(context.Background(), c, ids, o)
	if err != nil || len(changed) != 2 || changed[0] != ids[0] || changed[1] != ids[1] || s.VersionUpdates.Load() != 2 {
		t.Fatalf("changed %v, %d PATCHes, %v", changed, s.VersionUpdates.Load(), err)
	}
	for _, d := range []string{"d1", "d2"} {
		v, _ := s.Version(d, "1.0.1")
		pp := v.Properties.PublishingProfile
		if *pp.ExcludeFromLatest || *pp.TargetRegions[0].ExcludeFromLatest || (len(pp.TargetRegions) > 1 && *pp.TargetRegions[1].ExcludeFromLatest) ||
			v.Properties.StorageProfile == nil {
			t.Errorf("%s after promotion: %+v", d, pp)
		}
	}
	// Again: nothing to change.
	if changed, err := Promote(context.Background(), c, ids, o); err != nil || len(changed) != 0 || s.VersionUpdates.Load() != 2 {
		t.Fatalf("second promotion changed %v (%d PATCHes), %v", changed, s.VersionUpdates.Load(), err)
	}
}

func TestPromoteOfAMissingVersionOrABadIDIsAnError(t *testing.T) {
	s := armfake.New()
	c := client(t, s)
	if _, err := Promote(context.Background(), c, []string{galleryID + "/images/d/versions/9.9.9"}, fastOpts(t)); err == nil || !strings.Contains(err.Error(), "does not exist: it cannot be promoted") {
		t.Fatalf("missing: %v", err)
	}
	if _, err := Promote(context.Background(), c, []string{galleryID + "/images/d"}, fastOpts(t)); err == nil || !strings.Contains(err.Error(), "want <gallery id>/images/<definition>/versions/<version>") {
		t.Fatalf("bad id: %v", err)
	}
	storedVersion(s, "d", "1.0.1", true)
	o := fastOpts(t)
	o.DryRun = true
	var log []string
	o.Logf = func(f string, a ...any) { log = append(log, f) }
	if changed, err := Promote(context.Background(), c, []string{galleryID + "/images/d/versions/1.0.1"}, o); err != nil || len(changed) != 1 || s.VersionUpdates.Load() != 0 {
		t.Fatalf("dry run: %v %v, %d PATCHes sent", changed, err, s.VersionUpdates.Load())
	}
}

// The stand-in refuses a PATCH without the storage profile, as the REST
// spec's required storageProfile makes Azure refuse it.
func TestAPatchWithoutTheStorageProfileIsRefused(t *testing.T) {
	s := armfake.New()
	storedVersion(s, "d", "1.0.1", true)
	g, _ := ParseGalleryID(galleryID)
	err := client(t, s).UpdateVersion(context.Background(), g, "d", "1.0.1", armcompute.GalleryImageVersionUpdate{
		Properties: &armcompute.GalleryImageVersionProperties{PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{ExcludeFromLatest: ptr(false)}}}, 0)
	if err == nil || !strings.Contains(err.Error(), "InvalidParameter") {
		t.Fatalf("PATCH without storageProfile: %v", err)
	}
}
