package imagedef

import (
	"encoding/json"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Variant is one build: an image with one value for every dimension (the
// one type in internal/variant). Variants returned by one Expand call share
// their slices and maps (all but Dimensions) with variants of the same image
// and settings: treat them as read-only.
type Variant = variant.Variant

// Target is a publish target a variant goes to.
type Target = variant.Target

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
