package gallery

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

// ParseVersionID reads a version's resource id,
// /subscriptions/S/resourceGroups/R/providers/Microsoft.Compute/galleries/G/images/D/versions/V.
func ParseVersionID(id string) (g Gallery, def, version string, err error) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 12 || !strings.EqualFold(p[8], "images") || !strings.EqualFold(p[10], "versions") {
		return Gallery{}, "", "", fmt.Errorf("version id %q: want <gallery id>/images/<definition>/versions/<version>", id)
	}
	if g, err = ParseGalleryID("/" + strings.Join(p[:8], "/")); err != nil {
		return Gallery{}, "", "", fmt.Errorf("version id %q: %w", id, err)
	}
	return g, p[9], p[11], nil
}

// Promote puts published versions into "latest", as a release promotes a
// pre-release: excludeFromLatest false in each version's publishing profile
// and in every target region, one PATCH per version (with the storage
// profile read, as the REST spec requires it). A version already in latest
// is left alone; a missing one is an error naming it. In a dry run the
// PATCHes are printed, not sent. It returns the ids it changed (or would).
func Promote(ctx context.Context, c Client, ids []string, o Options) ([]string, error) {
	o.defaults()
	var changed []string
	for _, id := range ids {
		g, def, ver, err := ParseVersionID(id)
		if err != nil {
			return changed, err
		}
		o.Logf("GET %s", versionPath(g, def, ver))
		v, err := c.GetVersion(ctx, g, def, ver)
		if err != nil {
			return changed, fmt.Errorf("read version %s: %w", id, err)
		}
		if v == nil || v.Properties == nil {
			return changed, fmt.Errorf("version %s does not exist: it cannot be promoted (publish it first)", id)
		}
		pp := armcompute.GalleryImageVersionPublishingProfile{}
		if v.Properties.PublishingProfile != nil {
			pp = *v.Properties.PublishingProfile
		}
		excluded := pp.ExcludeFromLatest != nil && *pp.ExcludeFromLatest
		var regions []*armcompute.TargetRegion
		for _, r := range pp.TargetRegions {
			if r == nil {
				continue
			}
			rc := *r
			if rc.ExcludeFromLatest != nil && *rc.ExcludeFromLatest {
				excluded = true
			}
			rc.ExcludeFromLatest = ptr(false)
			regions = append(regions, &rc)
		}
		if !excluded {
			o.Logf("version %s of %s is in latest already", ver, def)
			continue
		}
		u := armcompute.GalleryImageVersionUpdate{Properties: &armcompute.GalleryImageVersionProperties{
			StorageProfile:    v.Properties.StorageProfile,
			PublishingProfile: &armcompute.GalleryImageVersionPublishingProfile{ExcludeFromLatest: ptr(false), TargetRegions: regions},
		}}
		changed = append(changed, id)
		if o.DryRun {
			o.Logf("dry run, not sent: PATCH %s %s", versionPath(g, def, ver), jsonOf(u))
			continue
		}
		o.Logf("PATCH %s (excludeFromLatest false)", versionPath(g, def, ver))
		if err := c.UpdateVersion(ctx, g, def, ver, u, o.PollFrequency); err != nil {
			return changed, fmt.Errorf("promote version %s: %w", id, err)
		}
	}
	return changed, nil
}
