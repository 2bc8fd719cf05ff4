// Package matrix is the Packer glue of the osimage-matrix datasource: it
// loads image definitions with internal/imagedef, expands them and returns
// the variants for `dynamic "source"` blocks.
package matrix

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"strconv"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"

	"github.com/osimage/packer-plugin-osimage/internal/imagedef"
	"github.com/osimage/packer-plugin-osimage/internal/release"
)

// Datasource expands image definitions into the variant matrix.
type Datasource struct {
	config Config
}

func (d *Datasource) ConfigSpec() hcldec.ObjectSpec { return d.config.FlatMapstructure().HCL2Spec() }

func (d *Datasource) Configure(raws ...interface{}) error { return d.config.Prepare(raws...) }

func (d *Datasource) OutputSpec() hcldec.ObjectSpec {
	return (&DatasourceOutput{}).FlatMapstructure().HCL2Spec()
}

func (d *Datasource) Execute() (cty.Value, error) {
	out, err := Run(d.config)
	if err != nil {
		return cty.NullVal(hcldec.ImpliedType(d.OutputSpec())), err
	}
	return toCty(out, hcldec.ImpliedType(d.OutputSpec()))
}

// Run loads and expands; it is Execute without cty, for tests.
func Run(c Config) (*DatasourceOutput, error) {
	tree, warns, err := imagedef.Load(c.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("osimage-matrix: %w", err)
	}
	vs, warns2, err := imagedef.Expand(tree, imagedef.Options{
		Distro: c.Distro, Version: c.Version, Only: c.Only, Skip: c.Skip, Strict: c.Strict.True(), Lenient: c.Strict.False(),
	})
	if err != nil {
		return nil, fmt.Errorf("osimage-matrix: %w", err)
	}
	if err := applyState(c, vs); err != nil {
		return nil, fmt.Errorf("osimage-matrix: %w", err)
	}
	mj, err := imagedef.MatrixJSON(vs)
	if err != nil {
		return nil, fmt.Errorf("osimage-matrix: matrix_json: %w", err)
	}
	out := &DatasourceOutput{Count: len(vs), MatrixJSON: mj, Keys: []string{}, Warnings: []string{}, Variants: []VariantOutput{}}
	for _, w := range append(warns, warns2...) {
		log.Printf("[WARN] osimage-matrix: %s", w)
		out.Warnings = append(out.Warnings, w.String())
	}
	for i := range vs {
		out.Variants = append(out.Variants, variantOutput(&vs[i]))
		out.Keys = append(out.Keys, vs[i].Key)
	}
	return out, nil
}

func variantOutput(v *imagedef.Variant) VariantOutput {
	o := VariantOutput{
		Key: v.Key, Image: v.Image, Description: v.Description, Distro: v.Distro,
		DistroVersion: v.DistroVersion, ReleaseVer: v.ReleaseVer, Arch: v.Arch, OCIArch: v.OCIArch,
		AzureArch: v.AzureArch, Platform: v.Platform, HyperVGeneration: v.HyperVGeneration,
		Firmware: v.Firmware, DefinitionType: v.DefinitionType, DefinitionPath: v.DefinitionPath,
		Profiles: list(v.Profiles), Dimensions: map[string]string{}, Capabilities: map[string]string{},
		PublishLabels: list(v.PublishLabels), PublishChannels: list(v.PublishChannels),
		Targets: []TargetOutput{}, Unresolved: list(v.Unresolved), Delivery: v.Delivery.String(),
		State: v.State, Revision: v.Revision, ReleaseName: v.ReleaseName, Stage: v.Stage, Pending: list(v.Pending),
	}
	for k, val := range v.Dimensions {
		o.Dimensions[k] = val
	}
	for k, val := range v.Capabilities {
		o.Capabilities[k] = strconv.FormatBool(val)
	}
	for _, t := range v.Targets {
		o.Targets = append(o.Targets, TargetOutput{Name: t.Name, InterfaceType: t.InterfaceType, Backend: t.Backend, ResourceURN: t.ResourceURN, ImageName: t.ImageName})
	}
	return o
}

// applyState sets each variant's release fields: from the state when
// `state` is given (revision, pending steps), else every step of the stage.
func applyState(c Config, vs []imagedef.Variant) error {
	stage := cmp.Or(c.Stage, release.StepRelease)
	subjects := make([]release.Subject, len(vs))
	for i := range vs {
		subjects[i] = release.Subject{Key: vs[i].Key, Image: vs[i].Image, Release: vs[i].ReleaseVersion()}
		for _, t := range vs[i].Targets {
			subjects[i].Targets = append(subjects[i].Targets, t.Name)
		}
	}
	var statuses []release.Status
	if c.State != "" {
		store, err := release.Open(c.State)
		if err != nil {
			return err
		}
		rev := -1
		if c.Revision != nil {
			rev = *c.Revision
		}
		if statuses, err = release.Plan(context.Background(), store, stage, rev, subjects); err != nil {
			return err
		}
		for i := range vs {
			vs[i].State = store.String()
		}
	} else {
		statuses = make([]release.Status, len(vs))
		for i, sub := range subjects {
			p, err := release.Pending(nil, stage, sub.Targets)
			if err != nil {
				return err
			}
			statuses[i] = release.Status{Pending: p, Name: release.ImageName(sub.Image, sub.Key, sub.Release, 0)}
		}
	}
	for i, st := range statuses {
		vs[i].Revision, vs[i].ReleaseName, vs[i].Stage, vs[i].Pending = st.Revision, st.Name, stage, st.Pending
	}
	return nil
}

// list returns a non-nil copy, so HCL sees an empty list, never null.
func list(s []string) []string {
	out := make([]string, len(s))
	copy(out, s)
	return out
}

// toCty converts the output with empty lists and maps kept empty (Packer's
// hcl2helper turns them into null, which breaks `for` expressions).
func toCty(out *DatasourceOutput, ty cty.Type) (cty.Value, error) {
	v, err := gocty.ToCtyValue(out, ty)
	if err != nil {
		return cty.NullVal(ty), fmt.Errorf("osimage-matrix: output: %w", err)
	}
	return v, nil
}
