package ociimage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layoutTarget writes to an OCI image layout directory: blobs through the
// layout package, tags as org.opencontainers.image.ref.name entries of
// index.json, which is replaced atomically (temp file + rename).
type layoutTarget struct {
	dir   string
	blobs int
	bytes int64
}

func newLayoutTarget(d Destination) (*layoutTarget, error) {
	dir, err := filepath.Abs(d.Layout)
	if err != nil {
		return nil, err
	}
	return &layoutTarget{dir: dir}, nil
}

func (t *layoutTarget) describe() string            { return t.dir }
func (t *layoutTarget) layerLimit() (int64, string) { return 0, "" }
func (t *layoutTarget) lockKey() string             { return "layout:" + t.dir }
func (t *layoutTarget) ref(s string) string         { return t.dir + s }
func (t *layoutTarget) stats() (int, int64, string) { return t.blobs, t.bytes, "" }

// path opens the layout, creating it when the directory has none.
func (t *layoutTarget) path() (layout.Path, error) {
	if _, err := os.Stat(filepath.Join(t.dir, "index.json")); err == nil {
		p, err := layout.FromPath(t.dir)
		if err != nil {
			return "", fmt.Errorf("OCI layout %s: %w", t.dir, err)
		}
		return p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return "", err
	}
	p, err := layout.Write(t.dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("create OCI layout %s: %w", t.dir, err)
	}
	return p, nil
}

func (t *layoutTarget) writeManifests(ctx context.Context, p *Plan, _ map[string]bool) error {
	unlock, err := lockFile(ctx, "", t.lockKey()+"#create")
	if err != nil {
		return err
	}
	_, err = t.path()
	unlock()
	if err != nil {
		return err
	}
	for _, m := range p.Manifests {
		for _, l := range m.Layers {
			if t.hasBlob(l.Digest, l.Size) {
				continue
			}
			// Hashed while copied, as a registry checks an upload: a file
			// changed since the builder recorded its sha256 is refused.
			if err := t.writeBlob(l.Digest, func(w io.Writer) error {
				f, err := os.Open(l.Path)
				if err != nil {
					return err
				}
				defer f.Close()
				h := sha256.New()
				if _, err := io.Copy(io.MultiWriter(w, h), f); err != nil {
					return err
				}
				if got := hex.EncodeToString(h.Sum(nil)); got != l.Digest.Hex {
					return fmt.Errorf("%s has sha256:%s, not the recorded %s: %w", l.Path, got, l.Digest, ErrBadDigest)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("OCI layout %s: write %s: %w", t.dir, l.Source, err)
			}
			t.blobs++
			t.bytes += l.Size
		}
		for _, b := range [][]byte{m.Config, m.Raw} {
			if err := t.writeSmall(b); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (t *layoutTarget) hasBlob(h v1.Hash, size int64) bool {
	st, err := os.Stat(filepath.Join(t.dir, "blobs", h.Algorithm, h.Hex))
	return err == nil && st.Size() == size
}

func (t *layoutTarget) writeSmall(b []byte) error {
	h := digestOf(b)
	if t.hasBlob(h, int64(len(b))) {
		return nil
	}
	if err := t.writeBlob(h, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return fmt.Errorf("OCI layout %s: %w", t.dir, err)
	}
	return nil
}

// writeBlob writes a blob under a temporary name and renames it into
// place, so a blob file is either whole or absent. (layout.WriteBlob
// writes in place and keeps any existing file, even a truncated one.)
func (t *layoutTarget) writeBlob(h v1.Hash, write func(io.Writer) error) error {
	dir := filepath.Join(t.dir, "blobs", h.Algorithm)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+h.Hex[:12]+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, h.Hex))
}

// readTop reads index.json; a layout not created yet holds nothing.
func (t *layoutTarget) readTop() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(t.dir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &v1.IndexManifest{SchemaVersion: 2}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", t.dir, err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("OCI layout %s: index.json: %w: %v", t.dir, ErrCorruptIndex, err)
	}
	return &idx, nil
}

// setRef points the ref.name tag at desc in index.json, replacing the
// entry that had that name.
func (t *layoutTarget) setRef(tag string, desc v1.Descriptor) error {
	top, err := t.readTop()
	if err != nil {
		return err
	}
	ann := map[string]string{AnnotationRefName: tag}
	for k, v := range desc.Annotations {
		ann[k] = v
	}
	desc.Annotations = ann
	var out []v1.Descriptor
	for _, d := range top.Manifests {
		if d.Annotations[AnnotationRefName] != tag {
			out = append(out, d)
		}
	}
	out = append(out, desc)
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Annotations[AnnotationRefName] < out[j].Annotations[AnnotationRefName]
	})
	top.Manifests = out
	if top.SchemaVersion == 0 {
		top.SchemaVersion = 2
	}
	top.MediaType = types.OCIImageIndex
	raw, err := json.MarshalIndent(top, "", "   ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(t.dir, ".index.json.*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(t.dir, "index.json"))
}

func (t *layoutTarget) tagArch(ctx context.Context, p *Plan, skip map[string]bool) error {
	for _, at := range p.ArchTags {
		if skip[at.Tag] {
			continue
		}
		m := p.Manifests[at.Manifest]
		if err := t.setRef(at.Tag, m.Descriptor); err != nil {
			return err
		}
	}
	return nil
}

func (t *layoutTarget) get(ctx context.Context, tag string) (Existing, error) {
	top, err := t.readTop()
	if err != nil {
		return Existing{}, err
	}
	for _, d := range top.Manifests {
		if d.Annotations[AnnotationRefName] != tag {
			continue
		}
		b, err := os.ReadFile(filepath.Join(t.dir, "blobs", d.Digest.Algorithm, d.Digest.Hex))
		if err != nil {
			return Existing{}, fmt.Errorf("OCI layout %s: tag %s: %w: %v", t.dir, tag, ErrCorruptIndex, err)
		}
		return Existing{Found: true, MediaType: string(d.MediaType), Raw: b}, nil
	}
	return Existing{}, nil
}

func (t *layoutTarget) head(ctx context.Context, tag string) (string, error) {
	top, err := t.readTop()
	if err != nil {
		return "", err
	}
	for _, d := range top.Manifests {
		if d.Annotations[AnnotationRefName] == tag {
			return d.Digest.String(), nil
		}
	}
	return "", nil
}

func (t *layoutTarget) hasManifest(ctx context.Context, h v1.Hash) (bool, error) {
	_, err := os.Stat(filepath.Join(t.dir, "blobs", h.Algorithm, h.Hex))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (t *layoutTarget) putIndex(ctx context.Context, tag string, raw []byte) error {
	if err := t.writeSmall(raw); err != nil {
		return err
	}
	return t.setRef(tag, v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(raw)), Digest: digestOf(raw)})
}
