package disk

import (
	"log"
	"strconv"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
)

// BuilderID identifies artifacts of this builder.
const BuilderID = "osimage.builder.disk"

// Artifact is the builder's artifact: the shared model (files by role,
// variant, generated data, ownership) plus HCP Packer registry metadata,
// which needs the SDK and so cannot live in internal/artifact.
type Artifact struct {
	*artifact.Artifact
	// source says where the disk came from: "kiwi:<description>" or the
	// source image path; it becomes the registry's SourceImageID.
	source string
}

var _ packersdk.Artifact = (*Artifact)(nil)

// State adds registryimage.ArtifactStateURI to the model's keys.
func (a *Artifact) State(name string) interface{} {
	if name == registryimage.ArtifactStateURI {
		img, err := a.registryImage()
		if err != nil {
			log.Printf("[DEBUG] osimage-disk: HCP Packer metadata: %v", err)
			return nil
		}
		return img
	}
	return a.Artifact.State(name)
}

// registryImage describes the disk for HCP Packer: the variant key as the
// image id, the output directory as the "region" (where it lies, as
// Packer's file builder does), and the variant as labels.
func (a *Artifact) registryImage() (*registryimage.Image, error) {
	v := a.Variant
	id := v.Key
	if id == "" {
		id = a.Id()
	}
	labels := map[string]interface{}{}
	for _, f := range v.Fields() {
		labels[f.JSON] = f.Value
	}
	if d, err := a.One(artifact.RoleDisk); err == nil {
		labels["disk"] = d.Path
		labels["disk_sha256"] = d.SHA256
		labels["disk_size"] = strconv.FormatInt(d.Size, 10)
	}
	for _, role := range []string{artifact.RoleKernel, artifact.RoleInitrd, artifact.RoleRootfs, artifact.RoleCmdline} {
		if f, err := a.One(role); err == nil {
			labels[role+"_sha256"] = f.SHA256
		}
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	return registryimage.FromArtifact(a,
		registryimage.WithID(id),
		registryimage.WithRegion(a.Generated["OutputDir"]),
		registryimage.WithSourceID(a.source),
		registryimage.SetLabels(labels),
	)
}
