package oci

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// stateRun is what the release state says this run does for the
// variant's oci-registry target; nil without a state (or a target): the
// post-processor then publishes as it always did.
type stateRun struct {
	rec     *release.Recorder
	target  string
	stage   string
	record  *release.Target // the target's record so far (nil: none)
	publish bool            // push the manifest and the version's indexes
	promote bool            // write the moving tags (extra_tags) from the arch tags
}

func (c *Config) planState(ctx context.Context, v *variant.Variant) (*stateRun, error) {
	if v.State == "" {
		return nil, nil
	}
	t, err := v.PickTarget(variant.InterfaceOCIRegistry, c.TargetName)
	if err != nil || t == nil {
		return nil, err
	}
	rec, err := release.RecorderFor(v)
	if err != nil {
		return nil, err
	}
	doc, err := rec.Load(ctx)
	if err != nil {
		return nil, err
	}
	r := &stateRun{rec: rec, target: t.Name, stage: v.Stage}
	if r.stage == "" {
		r.stage = release.StepRelease
	}
	if doc != nil {
		if i := slices.IndexFunc(doc.Targets, func(x release.Target) bool { return x.Name == t.Name }); i >= 0 {
			r.record = &doc.Targets[i]
		}
	}
	published := r.record != nil && r.record.Published != nil
	released := r.record != nil && r.record.Released != nil
	switch r.stage {
	case release.StepPublish:
		r.publish = !published
	case release.StepRelease:
		r.publish = !published
		r.promote = published && !released
	}
	return r, nil
}

// applyStage shapes the job for the run: a pre-release (stage publish)
// writes the version's tags without the moving ones (extra_tags); a
// promotion rebuilds the version's indexes, the moving ones included, from
// the arch tags the publish left (no files needed).
func (r *stateRun) applyStage(j *job) {
	switch {
	case r.publish && r.stage == release.StepPublish:
		j.options.ExtraTags = nil
	case r.promote:
		j.options.IndexMode = ociimage.IndexOnly
	}
}

// recordRun writes what the run did into the release state.
func (r *stateRun) recordRun(ctx context.Context, j *job, res *ociimage.Result) error {
	_, err := r.rec.Update(ctx, func(d *release.Doc) error {
		t := d.Target(r.target, variant.InterfaceOCIRegistry)
		now := time.Now().UTC().Truncate(time.Second)
		if t.OCI == nil {
			t.OCI = &release.OCI{}
		}
		t.OCI.Repository = res.Destination
		if r.publish {
			t.OCI.Manifests, t.OCI.Indexes, t.OCI.Tags = nil, nil, nil
			for _, m := range res.Manifests {
				t.OCI.Manifests = append(t.OCI.Manifests, release.OCIManifest{Arch: m.Arch, Platform: m.BootMode, Digest: m.Digest})
			}
			for _, ir := range res.Indexes {
				t.OCI.Indexes = append(t.OCI.Indexes, release.Index{Tag: ir.Tag, Digest: ir.Digest})
				t.OCI.Tags = append(t.OCI.Tags, ir.Tag)
			}
			t.Published = &now
		}
		if r.stage == release.StepRelease {
			t.OCI.MovingTags = movingTags(j)
			if r.promote {
				// The version's indexes as the promotion left them.
				t.OCI.Indexes = nil
				for _, ir := range res.Indexes {
					t.OCI.Indexes = append(t.OCI.Indexes, release.Index{Tag: ir.Tag, Digest: ir.Digest})
				}
			}
			t.Released = &now
		}
		return nil
	})
	return err
}

// movingTags are the extra tags of this variant's boot mode.
func movingTags(j *job) []string {
	d := ociimage.TagData{Version: j.options.Version, Variant: ociimage.IroncoreVariant(j.entry.BootMode), Platform: j.entry.BootMode,
		Arch: j.entry.Arch, Image: j.options.Image, ImageName: j.options.ImageName, Key: j.options.Key}
	var out []string
	for i, et := range j.options.ExtraTags {
		if t, err := ociimage.RenderTag(fmt.Sprintf("extra_tags[%d]", i), et, d); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// recordedResult is the result of a run with nothing to do, from the
// record (for the artifact's summary).
func recordedResult(r *stateRun) *ociimage.Result {
	res := &ociimage.Result{}
	if r.record == nil || r.record.OCI == nil {
		return res
	}
	o := r.record.OCI
	res.Destination = o.Repository
	for _, m := range o.Manifests {
		res.Manifests = append(res.Manifests, ociimage.ManifestResult{Arch: m.Arch, BootMode: m.Platform, Digest: m.Digest, Ref: o.Repository + "@" + m.Digest})
	}
	for _, ix := range o.Indexes {
		res.Indexes = append(res.Indexes, ociimage.IndexResult{Tag: ix.Tag, Ref: o.Repository + ":" + ix.Tag, Digest: ix.Digest})
	}
	return res
}
