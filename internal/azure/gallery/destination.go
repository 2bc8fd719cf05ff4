// Design choice: the destination is resolved from plain values (the chosen
// target's fields and the explicit settings), not from Packer's config or the
// variant type, so every precedence rule is a table test here; a setting
// given explicitly always wins over the target, and "*" (a value the matrix
// leaves to the publish step) counts as not given.

package gallery

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Target is the part of a variant's azure-compute-gallery target the
// destination reads.
type Target struct {
	Name        string
	ResourceURN string // the gallery's resource id
	ImageName   string // the definition's name for this variant's arch
}

// DestinationSettings are the destination fields set explicitly (empty:
// not set), named as packer-plugin-azure's shared_image_gallery_destination.
type DestinationSettings struct {
	Subscription  string
	ResourceGroup string
	GalleryName   string
	Location      string
	ImageName     string
	Gen1ImageName string
	// DefaultSubscription is used only when neither Subscription nor the
	// target's resource id gives one.
	DefaultSubscription string
}

// DestinationRequest is what a destination is resolved from.
type DestinationRequest struct {
	Variant string  // the variant's key, for errors
	Target  *Target // nil: the variant has no gallery target
	// Arch is x86_64 or aarch64 (default x86_64).
	Arch string
	// Generations asked for; when empty, VariantGeneration, else V2.
	Generations       []string
	VariantGeneration string
	Settings          DestinationSettings
}

// Destination is the gallery and the definition of each generation.
type Destination struct {
	Gallery     Gallery
	Generations []string          // in the order asked
	Names       map[string]string // generation -> definition name
}

// Definitions returns the definition names in the order of Generations.
func (d *Destination) Definitions() []string {
	out := make([]string, 0, len(d.Generations))
	for _, g := range d.Generations {
		out = append(out, d.Names[g])
	}
	return out
}

// given returns s unless it is "*" (left to the publish step).
func given(s string) string {
	if s == "*" {
		return ""
	}
	return s
}

// ResolveDestination merges the explicit settings over the target. It
// returns nil and no error when neither names a gallery (upload only).
// With two generations, Settings.ImageName (or the target's image_name)
// takes V2 and Settings.Gen1ImageName is required for V1.
func ResolveDestination(r DestinationRequest) (*Destination, error) {
	s := r.Settings
	var g Gallery
	var tgtName string
	if r.Target != nil {
		tgtName = given(r.Target.ImageName)
		if urn := given(r.Target.ResourceURN); urn != "" {
			var err error
			if g, err = ParseGalleryID(urn); err != nil {
				return nil, fmt.Errorf("variant %s target %s: resource_urn: %w", r.Variant, r.Target.Name, err)
			}
		}
	}
	g.SubscriptionID = cmp.Or(s.Subscription, g.SubscriptionID, s.DefaultSubscription)
	g.ResourceGroup = cmp.Or(s.ResourceGroup, g.ResourceGroup)
	g.Name = cmp.Or(s.GalleryName, g.Name)
	if g.Name == "" {
		return nil, nil // upload only
	}
	if g.SubscriptionID == "" || g.ResourceGroup == "" {
		return nil, fmt.Errorf("shared_image_gallery_destination: gallery %s needs subscription and resource_group", g.Name)
	}
	name := cmp.Or(s.ImageName, tgtName)
	if name == "" {
		return nil, fmt.Errorf("shared_image_gallery_destination.image_name: no image definition name (and the variant's azure-compute-gallery target gives none)")
	}
	asked := r.Generations
	if len(asked) == 0 && r.VariantGeneration != "" {
		asked = []string{r.VariantGeneration}
	}
	gens, err := Generations(cmp.Or(r.Arch, "x86_64"), asked)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, gen := range gens {
		names[gen] = name
		if gen == "V1" && len(gens) > 1 {
			if s.Gen1ImageName == "" {
				return nil, fmt.Errorf("hyperv_generations %v: give shared_image_gallery_destination.gen1_image_name, the definition of the V1 version (image_name %s takes V2)", gens, name)
			}
			names[gen] = s.Gen1ImageName
		}
	}
	g.Location = s.Location
	return &Destination{Gallery: g, Generations: gens, Names: names}, nil
}

// DefaultBlobName is `<key>-<first 16 hex digits of the disk's sha256>.vhd`
// when the artifact records the digest (osimage-disk does), else
// `<key>-<modified YYYYMMDDhhmmss UTC>.vhd`; the disk's base name without
// extension stands in for a missing key. The variant and artifact carry no
// source revision, so the disk's content (or, without a digest, its
// modification time) stands for the build: unique per variant and build,
// and stable for one disk, so a re-run, even on a fresh copy of the disk,
// reuses or resumes the same blob. A zero time gives "0".
func DefaultBlobName(key, diskPath string, modified time.Time, sha256Hex string) string {
	stamp := "0"
	if d := strings.ToLower(strings.TrimSpace(sha256Hex)); len(d) >= 16 {
		stamp = d[:16]
	} else if !modified.IsZero() {
		stamp = modified.UTC().Format("20060102150405")
	}
	base := key
	if base == "" {
		base = strings.TrimSuffix(filepath.Base(diskPath), filepath.Ext(diskPath))
	}
	return base + "-" + stamp + ".vhd"
}

// StorageAccountID is the resource id of the storage account that holds
// the blob, the version's source: explicitID when given, else built from
// the account name (account, or the one in blobURL) in resourceGroup (or
// the gallery's) of the gallery's subscription.
func StorageAccountID(explicitID, account, resourceGroup, blobURL string, g Gallery) string {
	if explicitID != "" {
		return explicitID
	}
	account = cmp.Or(account, AccountFromBlobURL(blobURL))
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s",
		g.SubscriptionID, cmp.Or(resourceGroup, g.ResourceGroup), account)
}

// AccountFromBlobURL takes the storage account from a blob endpoint or
// blob URL: https://ACCT.blob.core.windows.net/... or, path style as
// Azurite serves it, http://127.0.0.1:10000/ACCT/...
func AccountFromBlobURL(ep string) string {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil || host == "localhost" {
		seg := strings.Split(strings.Trim(u.Path, "/"), "/")
		return seg[0]
	}
	return strings.SplitN(host, ".", 2)[0]
}
