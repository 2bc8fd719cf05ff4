package gallery

import (
	"context"
	"fmt"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery"
	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// stateRun is what the release state says this run does for the
// variant's azure-compute-gallery target; nil without a state (or a
// target): the post-processor then publishes as it always did.
type stateRun struct {
	rec     *release.Recorder
	target  string // the target's name
	stage   string
	record  *release.Target // the target's record so far (nil: none)
	publish bool            // upload and create the versions
	promote bool            // put recorded versions into latest
	exclude bool            // a pre-release: new versions excluded from latest
}

// planState reads the variant's release state for this target.
func (p *PostProcessor) planState(ctx context.Context, v *variant.Variant) (*stateRun, error) {
	t, err := v.PickTarget(variant.InterfaceAzureComputeGallery, p.config.TargetName)
	if err != nil || v.State == "" || t == nil {
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
		for i := range doc.Targets {
			if doc.Targets[i].Name == t.Name {
				r.record = &doc.Targets[i]
			}
		}
	}
	published := r.record != nil && r.record.Published != nil
	released := r.record != nil && r.record.Released != nil
	switch r.stage {
	case release.StepPublish:
		r.publish, r.exclude = !published, true
	case release.StepRelease:
		r.publish = !published
		r.promote = published && !released
		r.exclude = p.config.ExcludeFromLatest
	}
	return r, nil
}

// fromRecord is the artifact of a run with nothing to upload: what the
// release state records for the target.
func (p *PostProcessor) fromRecord(a *artifact.Artifact, r *stateRun) *Artifact {
	out := a.Clone()
	out.Builder = BuilderID
	if out.Extra == nil {
		out.Extra = map[string]string{}
	}
	var versions []gallery.Published
	if r.record != nil {
		if b := r.record.Blob; b != nil {
			out.Extra["blob_url"], out.Extra["blob_md5"], out.Extra["blob_reused"] = b.URL, b.MD5, "true"
			out.ID = b.URL
		}
		for _, v := range r.record.Versions {
			_, def, ver, _ := gallery.ParseVersionID(v.ID)
			versions = append(versions, gallery.Published{Definition: def, Version: ver, HyperVGeneration: v.Generation, ID: v.ID, Regions: v.Regions, Action: "recorded"})
			out.ID = v.ID
		}
	}
	return &Artifact{Artifact: out, versions: versions}
}

// runState does the state's part of a run: nothing (already done), a
// promotion, or nothing yet (publish: the caller uploads and publishes,
// then calls recordPublish). handled says whether the run is over.
func (p *PostProcessor) runState(ctx context.Context, ui packersdk.Ui, a *artifact.Artifact, r *stateRun) (out *Artifact, handled bool, err error) {
	key := a.Variant.Key
	switch {
	case r.stage == release.StepBuild:
		ui.Sayf("%s: stage build, not publishing to %s", key, r.target)
		return p.fromRecord(a, r), true, nil
	case r.publish:
		return nil, false, nil
	case r.promote:
		var ids []string
		for _, v := range r.record.Versions {
			ids = append(ids, v.ID)
		}
		ui.Sayf("%s: promoting %d versions into latest (published %s, release state %s)", key, len(ids), r.record.Published.Format(time.RFC3339), r.rec)
		client, err := p.promoteClient(ids)
		if err != nil {
			return nil, true, err
		}
		gopts := gallery.Options{DryRun: p.config.DryRun, PollFrequency: p.config.PollInterval, Timeout: p.config.Timeout,
			Logf: func(f string, args ...any) { ui.Say(fmt.Sprintf(f, args...)) }}
		changed, err := gallery.Promote(ctx, client, ids, gopts)
		if err != nil {
			return nil, true, err
		}
		ui.Sayf("%s: %d of %d versions were excluded from latest and are now in it", key, len(changed), len(ids))
		if !p.config.DryRun {
			if _, err := r.rec.Update(ctx, func(d *release.Doc) error {
				t := d.Target(r.target, variant.InterfaceAzureComputeGallery)
				now := time.Now().UTC().Truncate(time.Second)
				t.Released = &now
				for i := range t.Versions {
					t.Versions[i].ExcludeFromLatest = false
				}
				r.record = t
				return nil
			}); err != nil {
				return nil, true, err
			}
		}
		return p.fromRecord(a, r), true, nil
	default:
		what := "published"
		if r.record != nil && r.record.Released != nil {
			what = "published and released"
		}
		ui.Sayf("%s: already %s to %s (release state %s), nothing to do", key, what, r.target, r.rec)
		return p.fromRecord(a, r), true, nil
	}
}

// promoteClient is the ARM client for the gallery of the recorded
// versions.
func (p *PostProcessor) promoteClient(ids []string) (gallery.Client, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("the release state records no gallery versions to promote")
	}
	g, _, _, err := gallery.ParseVersionID(ids[0])
	if err != nil {
		return nil, err
	}
	p.announce = func(string) {}
	cred, tried, err := p.cred()
	if err != nil {
		return nil, fmt.Errorf("Azure credential (%s): %w", tried, err)
	}
	return p.armClient(g.SubscriptionID, cred)
}

// recordPublish records the upload and the versions in the release state.
func recordPublish(ctx context.Context, r *stateRun, file artifact.File, up pageblob.Result, res gallery.Result) error {
	_, err := r.rec.Update(ctx, func(d *release.Doc) error {
		t := d.Target(r.target, variant.InterfaceAzureComputeGallery)
		now := time.Now().UTC().Truncate(time.Second)
		t.Uploaded = &now
		t.Blob = &release.Blob{URL: pageblob.URLWithoutQuery(up.URL), MD5: up.MD5Hex, Size: up.Size, Source: file.SHA256}
		t.Versions = nil
		for _, v := range res.Versions {
			t.Versions = append(t.Versions, release.GalleryVersion{ID: v.ID, Generation: v.HyperVGeneration, Regions: v.Regions, ExcludeFromLatest: r.exclude})
		}
		t.Published = &now
		if r.stage == release.StepRelease && !r.exclude {
			t.Released = &now
		}
		return nil
	})
	return err
}
