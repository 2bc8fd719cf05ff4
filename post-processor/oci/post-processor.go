// Package oci is the Packer glue of the osimage-oci post-processor: it reads
// the artifact's files by role and its variant, finds the destination, and
// hands everything to internal/ociimage, which plans and publishes.
package oci

import (
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	registryimage "github.com/hashicorp/packer-plugin-sdk/packer/registry/image"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
	"github.com/osimage/packer-plugin-osimage/internal/packerutil"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/sbom"
)

// BuilderID identifies artifacts of this post-processor.
const BuilderID = "osimage.post-processor.oci"

// PostProcessor publishes OS images as OCI indexes.
type PostProcessor struct {
	config Config
}

func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

func (p *PostProcessor) Configure(raws ...interface{}) error { return p.config.Prepare(raws...) }

func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	a, err := artifact.From(in)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: %w", err)
	}
	p.config.ApplyVariant(a)
	// With a release state, the variant's record decides what is left:
	// nothing, a promotion (the moving tags), or a publish (recorded).
	sr, err := p.config.planState(ctx, &a.Variant)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: %w", err)
	}
	if sr != nil && !sr.publish && !sr.promote {
		out := a.Clone()
		out.Builder = BuilderID
		what := "stage build, not publishing"
		if sr.stage != release.StepBuild {
			what = "already published"
			if sr.record != nil && sr.record.Released != nil {
				what = "already published and released"
			}
			what += " (release state " + sr.rec.String() + "), nothing to do"
		}
		ui.Sayf("%s: %s to %s", a.Variant.Key, what, sr.target)
		return &Artifact{Artifact: out, result: recordedResult(sr), source: a.Id()}, true, false, nil
	}
	job, err := p.config.job(a)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: %w", err)
	}
	if sr != nil {
		sr.applyStage(job)
		switch {
		case sr.promote:
			ui.Sayf("%s: promoting: the version's indexes with the moving tags %v, from the arch tags (no upload)", a.Variant.Key, movingTags(job))
		case sr.stage == release.StepPublish:
			ui.Sayf("%s: a pre-release (stage publish): the version's tags only, the moving tags at the release stage", a.Variant.Key)
		}
	}
	created, err := ociimage.Created(os.Getenv, time.Now())
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: %w", err)
	}
	job.options.Created = created

	if job.options.IndexMode == ociimage.IndexOnly {
		ui.Sayf("Planning the indexes of version %s from the arch tags (%s)", job.options.Version, job.dest.Repository+job.dest.Layout)
	} else {
		ui.Sayf("Planning %s/%s manifest of %s (%s)", job.entry.Arch, job.entry.BootMode, job.entry.Key, job.dest.Repository+job.dest.Layout)
	}
	plan, err := ociimage.NewPlan([]ociimage.Entry{job.entry}, job.options)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: %w", err)
	}
	defer plan.Close()

	progress := packerutil.NewProgress(ui, "push "+job.dest.Repository+job.dest.Layout)
	job.dest.Progress = progress.Update
	job.dest.Logf = func(f string, args ...any) { ui.Sayf(f, args...) }
	res, err := ociimage.Publish(ctx, plan, job.dest)
	progress.Close()
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: %w", err)
	}
	for _, m := range res.Manifests {
		ui.Sayf("Manifest %s/%s: %s", m.Arch, m.BootMode, m.Ref)
	}
	for _, t := range res.ArchTags {
		ui.Sayf("Tagged %s", t)
	}
	for _, ir := range res.Indexes {
		state := "unchanged"
		if ir.Changed {
			state = "updated"
		}
		ui.Sayf("Index %s@%s (%d entries, %s)", ir.Ref, ir.Digest, ir.Entries, state)
	}
	ui.Sayf("Sent %d blobs, %d bytes (blobs the destination had were not sent)", res.BlobsSent, res.BytesSent)
	if len(res.TagsWritten) == 0 {
		ui.Say("Wrote no tag (every tag already held what this build would write)")
	} else {
		ui.Sayf("Wrote tags %s", strings.Join(res.TagsWritten, ", "))
	}

	att, err := p.attach(ctx, ui, a, job, res)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-oci: pushed, but: %w", err)
	}
	if sr != nil {
		if err := sr.recordRun(ctx, job, res); err != nil {
			return nil, false, false, fmt.Errorf("osimage-oci: published, but recording it in the release state failed (the next run finds the tags and records them): %w", err)
		}
		ui.Sayf("Recorded in the release state (%s)", sr.rec)
	}

	out := a.Clone()
	out.Builder = BuilderID
	if len(res.Manifests) > 0 {
		out.ID = res.Manifests[0].Ref
	}
	if out.Extra == nil {
		out.Extra = map[string]string{}
	}
	for k, v := range resultState(res) {
		out.Extra[k] = v
	}
	return &Artifact{Artifact: out, result: res, attached: att, source: a.Id()}, true, false, nil
}

// attach pushes the SBOM referrer and the signature of each manifest the
// run pushed (registries only; none for a promotion, which pushes no
// manifest).
func (p *PostProcessor) attach(ctx context.Context, ui packersdk.Ui, a *artifact.Artifact, j *job, res *ociimage.Result) (*ociimage.AttachResult, error) {
	c := &p.config
	at := ociimage.Attachments{Signer: c.Signer(), Created: j.options.Created.Format(time.RFC3339)}
	if c.SBOM == nil || *c.SBOM {
		if fs := a.ByRole(artifact.RoleSBOM); len(fs) == 1 {
			at.SBOM, at.SBOMMediaType = fs[0].Path, sbom.MediaType(fs[0].Format)
		}
	}
	if len(res.Manifests) == 0 || at.SBOM == "" && at.Signer == nil {
		return nil, nil
	}
	if j.dest.Layout != "" {
		ui.Say("The SBOM and the signature are attached in registries only; this is an OCI layout: none attached")
		return nil, nil
	}
	att, err := ociimage.Attach(ctx, j.dest, res.Manifests, at)
	if err != nil {
		return nil, err
	}
	for _, r := range att.SBOMReferrers {
		ui.Sayf("SBOM referrer %s", r)
	}
	for _, s := range att.Signatures {
		ui.Sayf("Signed: %s (cosign verify --key <public key> ...)", s)
	}
	for _, s := range att.Unchanged {
		ui.Sayf("Signature %s already holds this key's signature of the manifest", s)
	}
	return att, nil
}

// resultState is the artifact's state: index digests per tag, the manifest
// digest per entry, the pushed references.
func resultState(res *ociimage.Result) map[string]string {
	st := map[string]string{"oci_destination": res.Destination}
	var refs, manifests []string
	for _, m := range res.Manifests {
		st["oci_manifest_digest"] = m.Digest
		manifests = append(manifests, m.Arch+"/"+m.BootMode+"="+m.Digest)
		refs = append(refs, m.Ref)
	}
	st["oci_manifests"] = strings.Join(manifests, ",")
	var idx []string
	for _, ir := range res.Indexes {
		st["oci_index_digest."+ir.Tag] = ir.Digest
		idx = append(idx, ir.Tag+"="+ir.Digest)
		refs = append(refs, ir.Ref+"@"+ir.Digest)
	}
	st["oci_indexes"] = strings.Join(idx, ",")
	refs = append(refs, res.ArchTags...)
	sort.Strings(refs)
	st["oci_refs"] = strings.Join(refs, ",")
	st["oci_tags_written"] = strings.Join(res.TagsWritten, ",")
	return st
}

// Artifact is the shared model plus what was published, and HCP Packer
// metadata (which needs the SDK).
type Artifact struct {
	*artifact.Artifact
	result   *ociimage.Result
	attached *ociimage.AttachResult
	source   string
}

var _ packersdk.Artifact = (*Artifact)(nil)

// String lists what was published, as packer prints it at the end of the
// build: every manifest and index by reference and digest, and which tags
// this build wrote (a tag that already held the same is not rewritten).
func (a *Artifact) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "OCI %s", a.result.Destination)
	written := map[string]bool{}
	for _, t := range a.result.TagsWritten {
		written[t] = true
	}
	state := func(tag string) string {
		if written[tag] {
			return "written"
		}
		return "unchanged"
	}
	for _, m := range a.result.Manifests {
		fmt.Fprintf(&b, "\n  manifest %s/%s %s", m.Arch, m.BootMode, m.Ref)
	}
	for _, ir := range a.result.Indexes {
		fmt.Fprintf(&b, "\n  index    %s@%s (%d entries, tag %s)", ir.Ref, ir.Digest, ir.Entries, state(ir.Tag))
	}
	for _, t := range a.result.ArchTags {
		tag := t[strings.LastIndex(t, ":")+1:]
		fmt.Fprintf(&b, "\n  tag      %s (%s)", t, state(tag))
	}
	if at := a.attached; at != nil {
		for _, r := range at.SBOMReferrers {
			fmt.Fprintf(&b, "\n  sbom     %s", r)
		}
		for _, s := range append(append([]string(nil), at.Signatures...), at.Unchanged...) {
			fmt.Fprintf(&b, "\n  signed   %s", s)
		}
	}
	return b.String()
}

// State adds registryimage.ArtifactStateURI to the model's keys.
func (a *Artifact) State(name string) interface{} {
	if name == registryimage.ArtifactStateURI {
		img, err := a.registryImage()
		if err != nil {
			log.Printf("[DEBUG] osimage-oci: HCP Packer metadata: %v", err)
			return nil
		}
		return img
	}
	return a.Artifact.State(name)
}

// registryImage describes the push for HCP Packer: the manifest reference
// as the image id, the repository as the region, tags and digests as labels.
func (a *Artifact) registryImage() (*registryimage.Image, error) {
	labels := map[string]interface{}{}
	for k, v := range resultState(a.result) {
		labels[k] = v
	}
	v := a.Variant
	for k, s := range map[string]string{"key": v.Key, "arch": v.Arch, "platform": v.Platform, "image_name": v.ImageName} {
		if s != "" {
			labels[k] = s
		}
	}
	return registryimage.FromArtifact(a,
		registryimage.WithProvider("oci"),
		registryimage.WithID(a.Id()),
		registryimage.WithRegion(a.result.Destination),
		registryimage.WithSourceID(a.source),
		registryimage.SetLabels(labels),
	)
}
