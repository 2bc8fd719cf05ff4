package releasemanifest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/sourcedate"
)

// BuilderID is the artifact's builder id.
const BuilderID = "osimage.builder.release"

// Builder writes the release manifest and notes.
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
	docs, err := release.Latest(ctx, c.store, c.Release)
	if err != nil {
		return nil, fmt.Errorf("release %s in %s: %w", c.Release, c.store, err)
	}
	created, err := sourcedate.Time(os.Getenv, time.Now())
	if err != nil {
		return nil, err
	}
	m := &release.Manifest{Release: c.Release, Store: c.store.String(), Created: created, Variants: docs}
	a := &artifact.Artifact{Builder: BuilderID, Extra: map[string]string{}}
	for _, f := range []struct {
		path, role string
		data       []byte
	}{
		{c.Manifest, "manifest", m.JSON()},
		{c.Notes, "notes", []byte(m.Markdown())},
	} {
		if err := writeWhole(f.path, f.data); err != nil {
			return nil, err
		}
		a.Outputs = append(a.Outputs, artifact.File{Path: f.path, Role: f.role})
		a.Extra[f.role] = f.path
	}
	ui.Sayf("Release %s: %d variants in %s; manifest %s, notes %s", c.Release, len(docs), c.store, c.Manifest, c.Notes)
	if missing := release.Incomplete(docs, c.expected, c.targets, c.Stage); len(missing) > 0 {
		return a, fmt.Errorf("release %s has not finished the %s stage (%d of %d variants):\n  %s",
			c.Release, c.Stage, len(missing), max(len(c.expected), len(docs)), strings.Join(missing, "\n  "))
	}
	ui.Sayf("Every variant of release %s finished the %s stage", c.Release, c.Stage)
	return a, nil
}

// writeWhole writes a file through a temporary file and a rename, so a
// reader never sees half of it.
func writeWhole(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
