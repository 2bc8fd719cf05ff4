package state

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/release"
)

// BuilderID is the artifact's builder id.
const BuilderID = "osimage.builder.state"

// Builder yields a recorded build.
type Builder struct {
	config Config
}

var _ packer.Builder = (*Builder)(nil)

func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	return nil, nil, b.config.Prepare(raws...)
}

func (b *Builder) Run(ctx context.Context, ui packer.Ui, _ packer.Hook) (packer.Artifact, error) {
	c := &b.config
	v := c.variant
	d, err := c.recorder.Load(ctx)
	if err != nil {
		return nil, err
	}
	if d == nil || d.Built == nil {
		return nil, fmt.Errorf("%s has no build in the release state: build it with osimage-disk (the matrix lists build as pending for it: %s)", c.recorder, strings.Join(v.Pending, ", "))
	}
	a := &artifact.Artifact{Builder: BuilderID, Variant: v.Clone(), Extra: map[string]string{"release_name": d.Name}}
	var missing []string
	// Only a publish reads the files: without one pending, their sizes
	// are enough (a no-op run stays quick whatever the disks weigh).
	verify := *c.Verify && slices.Contains(v.Pending, release.StepPublish)
	for _, l := range release.FindLocal(ctx, d, c.OutputDirectory, verify) {
		if l.Path == "" {
			missing = append(missing, fmt.Sprintf("%s %s (%s)", l.Role, l.Name, l.Why))
			continue
		}
		a.Outputs = append(a.Outputs, artifact.File{Path: l.Path, Role: l.Role, Size: l.Size, SHA256: l.SHA256})
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	ui.Say(summary(d, v.Stage, v.Pending))
	if len(missing) > 0 {
		a.Extra["missing_files"] = strings.Join(missing, "; ")
		ui.Sayf("Not on this machine (needed only by a pending step that uses them): %s", strings.Join(missing, "; "))
	}
	return a, nil
}

// summary says what the state holds for the variant and what is left.
func summary(d *release.Doc, stage string, pending []string) string {
	var done []string
	if d.Built != nil {
		done = append(done, "built "+d.Built.Format("2006-01-02 15:04"))
	}
	for _, t := range d.Targets {
		if t.Published != nil {
			done = append(done, t.Name+" published "+t.Published.Format("2006-01-02 15:04"))
		}
		if t.Released != nil {
			done = append(done, t.Name+" released "+t.Released.Format("2006-01-02 15:04"))
		}
	}
	if len(pending) == 0 {
		return fmt.Sprintf("%s: nothing pending up to %s (%s)", d.Name, stage, strings.Join(done, ", "))
	}
	return fmt.Sprintf("%s: %s; pending: %s", d.Name, strings.Join(done, ", "), strings.Join(pending, ", "))
}
