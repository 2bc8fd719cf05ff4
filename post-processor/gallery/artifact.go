package gallery

import (
	"cmp"
	"fmt"
	"log"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
)

// Artifact is the shared model plus HCP Packer metadata: one registry
// image per version and region (or the blob, when only uploaded).
type Artifact struct {
	*artifact.Artifact
	versions []gallery.Published
	dest     *gallery.Destination
}

var _ packersdk.Artifact = (*Artifact)(nil)

// String is the model's summary followed by what was published: the blob
// (its URL never holds a SAS) with its MD5, and each version's resource id
// per generation with its regions. Packer prints it at the end of a build.
func (a *Artifact) String() string {
	var b strings.Builder
	b.WriteString(a.Artifact.String())
	verb := "published"
	if a.Extra["dry_run"] == "true" {
		verb = "dry run, not published"
	}
	fmt.Fprintf(&b, "\n%s:", verb)
	if u := a.Extra["blob_url"]; u != "" {
		how := ""
		switch {
		case a.Extra["blob_reused"] == "true":
			how = ", reused"
		case a.Extra["blob_md5"] == "":
			how = ", not uploaded"
		}
		fmt.Fprintf(&b, "\n  blob     %s (MD5 %s%s)", pageblob.URLWithoutQuery(u), cmp.Or(a.Extra["blob_md5"], "unknown"), how)
	}
	for _, k := range []string{"sbom_url", "signature_url"} {
		if u := a.Extra[k]; u != "" {
			fmt.Fprintf(&b, "\n  %-8s %s", strings.TrimSuffix(k, "_url"), u)
		}
	}
	for _, v := range a.versions {
		fmt.Fprintf(&b, "\n  %-8s %s (%s; regions %s)", v.HyperVGeneration, v.ID, v.Action, strings.Join(v.Regions, ", "))
	}
	return b.String()
}

// Destroy leaves the blob and gallery versions alone: they are published.
func (a *Artifact) Destroy() error { return nil }

// State adds registryimage.ArtifactStateURI to the model's keys.
func (a *Artifact) State(name string) interface{} {
	if name == registryimage.ArtifactStateURI {
		imgs, err := a.registryImages()
		if err != nil {
			log.Printf("[DEBUG] osimage-gallery: HCP Packer metadata: %v", err)
			return nil
		}
		return imgs
	}
	return a.Artifact.State(name)
}

func (a *Artifact) registryImages() ([]*registryimage.Image, error) {
	labels := map[string]string{"blob_url": a.Extra["blob_url"], "blob_md5": a.Extra["blob_md5"]}
	if a.Variant.Key != "" {
		labels["variant"] = a.Variant.Key
	}
	var out []*registryimage.Image
	for _, v := range a.versions {
		for _, r := range v.Regions {
			l := map[string]string{"hyperv_generation": v.HyperVGeneration, "image_definition": v.Definition, "image_version": v.Version}
			for k, x := range labels {
				l[k] = x
			}
			out = append(out, &registryimage.Image{ImageID: v.ID, ProviderName: "azure", ProviderRegion: r, SourceImageID: a.Extra["blob_url"], Labels: l})
		}
	}
	if len(out) == 0 {
		out = append(out, &registryimage.Image{ImageID: a.Extra["blob_url"], ProviderName: "azure", ProviderRegion: "blob", Labels: labels})
	}
	return out, nil
}
