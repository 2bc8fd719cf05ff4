package imagedef

import (
	"encoding/json"
)

// Variant is one build: an image with one value for every dimension. The
// datasource output maps these fields one to one (JSON names in the tags).
//
// Variants returned by one Expand call share their slices and maps (all but
// Dimensions) with variants of the same image and settings: treat them as
// read-only. They never share data with the Tree or with other calls.
type Variant struct {
	// Key is unique and usable as a Packer source name; see the package
	// comment for how it is formed.
	Key              string            `json:"key"`
	Image            string            `json:"image"`
	Description      string            `json:"description"`
	Distro           string            `json:"distro"`
	DistroVersion    string            `json:"distro_version"`
	ReleaseVer       string            `json:"release_ver"`
	Arch             string            `json:"arch"`       // x86_64 or aarch64 (KIWI, uname -m)
	OCIArch          string            `json:"oci_arch"`   // amd64 or arm64
	AzureArch        string            `json:"azure_arch"` // x64 or Arm64
	Platform         string            `json:"platform"`   // virtualization or baremetal
	HyperVGeneration string            `json:"hyperv_generation"`
	Firmware         string            `json:"firmware"`
	DefinitionType   string            `json:"definition_type"`
	DefinitionPath   string            `json:"definition_path"` // absolute
	Profiles         []string          `json:"profiles"`
	Dimensions       map[string]string `json:"dimensions"`
	Capabilities     map[string]bool   `json:"capabilities"`
	PublishLabels    []string          `json:"publish_labels"`
	PublishChannels  []string          `json:"publish_channels"`
	Targets          []Target          `json:"targets"`
	// Unresolved lists the settings given as "*" (to be filled in by a
	// publish step), as dotted paths such as
	// delivery.shared_gallery.image_version, targets.NAME.resource_urn or
	// release_ver. Sorted.
	Unresolved []string `json:"unresolved"`
	// Delivery holds the delivery.* tables after when overrides; values
	// given as "*" are nil (JSON null). Treat it as read-only.
	Delivery map[string]any `json:"delivery"`

	// File is the file that declares the image.
	File string `json:"-"`

	deliveryJSON string // Delivery encoded once per Expand call
}

// Target is a publish target this variant goes to.
type Target struct {
	Name          string `json:"name"`
	InterfaceType string `json:"interface_type"`
	Backend       string `json:"backend"`
	ResourceURN   string `json:"resource_urn"`
	ImageName     string `json:"image_name"` // the target's image for this variant's arch
}

// DeliveryJSON returns Delivery as compact JSON with sorted keys ("{}" when
// there is none). For variants from Expand it is encoded once per shared
// Delivery map.
func (v *Variant) DeliveryJSON() string {
	if v.deliveryJSON != "" {
		return v.deliveryJSON
	}
	if len(v.Delivery) == 0 {
		return "{}"
	}
	b, err := appendJSON(nil, v.Delivery)
	if err != nil {
		// Cannot happen for values decoded from TOML (non-finite floats are
		// rejected when loading); keep the output valid JSON anyway.
		return "{}"
	}
	return string(b)
}

// matrix is the document MatrixJSON writes.
type matrix struct {
	Include []Variant `json:"include"`
}

// MatrixJSON returns the variants as a CI job matrix: compact JSON of the
// form {"include":[VARIANT,...]} with the fields of Variant under their JSON
// names, in the order given. In GitHub Actions, `strategy.matrix:
// ${{ fromJSON(needs.plan.outputs.matrix) }}` runs one job per variant, and
// each job builds its variant with `packer build -only='*.${{ matrix.key }}' .`.
func MatrixJSON(vs []Variant) (string, error) {
	m := matrix{Include: vs}
	if m.Include == nil {
		m.Include = []Variant{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
