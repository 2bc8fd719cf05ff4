package ociimage

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Existing is what a tag holds before a merge.
type Existing struct {
	Found     bool
	MediaType string
	Raw       []byte
}

// digest is the sha256 of what the tag holds; "" for nothing.
func (e Existing) digest() string {
	if !e.Found {
		return ""
	}
	return digestOf(e.Raw).String()
}

// mediaTypeOf drops the parameters of a Content-Type ("…+json;
// charset=utf-8"): a media type is compared without them
// (opencontainers/distribution-spec#469).
func mediaTypeOf(contentType string) types.MediaType {
	mt, _, _ := strings.Cut(contentType, ";")
	return types.MediaType(strings.ToLower(strings.TrimSpace(mt)))
}

// parseIndex reads what a tag holds as an index: nil for nothing. A
// manifest or another kind of document is ErrNotAnIndex, bytes that do not
// parse are ErrCorruptIndex.
func parseIndex(where string, e Existing) (*v1.IndexManifest, error) {
	if !e.Found {
		return nil, nil
	}
	mt := mediaTypeOf(e.MediaType)
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Layers    json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(e.Raw, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", where, ErrCorruptIndex, err)
	}
	if mt == "" {
		mt = probe.MediaType
	}
	if !mt.IsIndex() && !(mt == "" && probe.Manifests != nil) {
		return nil, fmt.Errorf("%s holds a %s, not an image index: %w", where, nonEmpty(string(mt), "document without a media type"), ErrNotAnIndex)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(e.Raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", where, ErrCorruptIndex, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: %w: schemaVersion %d, want 2", where, ErrCorruptIndex, idx.SchemaVersion)
	}
	for i, d := range idx.Manifests {
		if d.Digest.Algorithm == "" || d.Digest.Hex == "" || d.Size < 0 {
			return nil, fmt.Errorf("%s: %w: manifests[%d] has no valid digest", where, ErrCorruptIndex, i)
		}
	}
	return &idx, nil
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type entryKey struct{ os, arch, bootMode string }

func keyOf(d v1.Descriptor) entryKey {
	var k entryKey
	if d.Platform != nil {
		k.os, k.arch = d.Platform.OS, d.Platform.Architecture
	}
	k.bootMode = d.Annotations[AnnotationBootMode]
	return k
}

// descriptorFor returns the index entry of a manifest for an index tag.
func descriptorFor(m *Manifest, it IndexTag) v1.Descriptor {
	d := m.Descriptor
	p := *d.Platform
	if it.PlatformVariant {
		p.Variant = m.BootMode
	}
	d.Platform = &p
	ann := make(map[string]string, len(d.Annotations))
	for k, v := range d.Annotations {
		ann[k] = v
	}
	d.Annotations = ann
	return d
}

// Merge adds or replaces this build's entries in the index a tag holds and
// returns the new index. Entries are keyed by (os, architecture, boot mode
// annotation): an existing entry with the key of an added one is replaced,
// every other entry is kept. An entry for the same os/architecture without
// a boot mode annotation (not written by this package) is an error unless
// force, which also starts afresh over a non-index or corrupt index.
// Entries come out in the documented order (entryLess, baremetal first),
// so the same inputs give the same bytes.
func Merge(where string, cur Existing, add []v1.Descriptor, annotations map[string]string, force bool) ([]byte, *v1.IndexManifest, error) {
	old, err := parseIndex(where, cur)
	if err != nil {
		if !force {
			return nil, nil, fmt.Errorf("%w (set force to replace it)", err)
		}
		old = nil
	}
	return mergeEntries(where, old, add, annotations, force, Baremetal)
}

// mergeEntries is Merge over a parsed index, with first the boot mode
// whose entries come first.
func mergeEntries(where string, old *v1.IndexManifest, add []v1.Descriptor, annotations map[string]string, force bool, first string) ([]byte, *v1.IndexManifest, error) {
	out := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	mine := map[entryKey]bool{}
	for _, d := range add {
		mine[keyOf(d)] = true
	}
	if old != nil {
		for _, d := range old.Manifests {
			k := keyOf(d)
			if mine[k] {
				continue
			}
			if k.bootMode == "" && d.Platform != nil {
				clash := false
				for m := range mine {
					if m.os == k.os && m.arch == k.arch {
						clash = true
					}
				}
				if clash {
					if force {
						continue
					}
					return nil, nil, fmt.Errorf("%s holds %s for %s/%s without a %s annotation: %w (set force to replace it)",
						where, d.Digest, k.os, k.arch, AnnotationBootMode, ErrForeignEntry)
				}
			}
			out.Manifests = append(out.Manifests, d)
		}
		if len(old.Annotations) > 0 {
			out.Annotations = map[string]string{}
			for k, v := range old.Annotations {
				out.Annotations[k] = v
			}
		}
	}
	out.Manifests = append(out.Manifests, add...)
	for k, v := range annotations {
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[k] = v
	}
	sort.SliceStable(out.Manifests, func(i, j int) bool {
		a, b := keyOf(out.Manifests[i]), keyOf(out.Manifests[j])
		if a.bootMode != b.bootMode || a.arch != b.arch {
			return entryLess(first, a.bootMode, a.arch, b.bootMode, b.arch)
		}
		if a.os != b.os {
			return a.os < b.os
		}
		return out.Manifests[i].Digest.String() < out.Manifests[j].Digest.String()
	})
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, nil, err
	}
	return raw, out, nil
}

// withEntries returns idx plus the entries of extra whose key idx lacks;
// with override, extra's entries also replace idx's entries of the same
// key. idx is not changed.
func withEntries(idx *v1.IndexManifest, extra []v1.Descriptor, override bool) *v1.IndexManifest {
	if len(extra) == 0 {
		return idx
	}
	out := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	byKey := map[entryKey]v1.Descriptor{}
	for _, d := range extra {
		byKey[keyOf(d)] = d
	}
	if idx != nil {
		out.Annotations = idx.Annotations
		for _, d := range idx.Manifests {
			k := keyOf(d)
			if e, ok := byKey[k]; ok && k.bootMode != "" {
				if override {
					d = e
				}
				delete(byKey, k)
			}
			out.Manifests = append(out.Manifests, d)
		}
	}
	for _, d := range extra {
		if e, ok := byKey[keyOf(d)]; ok {
			out.Manifests = append(out.Manifests, e)
			delete(byKey, keyOf(d))
		}
	}
	return out
}

// entryFromManifest is the index entry for a manifest this package wrote
// (read back from an arch tag): nil when raw is not such a manifest of the
// expected architecture and boot mode.
func entryFromManifest(raw []byte, arch, bootMode string, it IndexTag) *v1.Descriptor {
	var m v1.Manifest
	if json.Unmarshal(raw, &m) != nil || m.SchemaVersion != 2 || m.Config.MediaType != MediaTypeConfig {
		return nil
	}
	if m.Annotations[AnnotationBootMode] != bootMode || m.Annotations[AnnotationArch] != arch {
		return nil
	}
	ann := map[string]string{}
	for _, k := range []string{AnnotationBootMode, AnnotationArch, AnnotationImage, AnnotationVersion, AnnotationRevision} {
		if v, ok := m.Annotations[k]; ok {
			ann[k] = v
		}
	}
	d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: digestOf(raw),
		Platform: &v1.Platform{OS: "linux", Architecture: arch}, Annotations: ann}
	if it.PlatformVariant {
		d.Platform.Variant = bootMode
	}
	return &d
}

// missingFrom lists the descriptors of want that idx does not hold with the
// same digest and key.
func missingFrom(idx *v1.IndexManifest, want []v1.Descriptor) []v1.Descriptor {
	var out []v1.Descriptor
	for _, w := range want {
		found := false
		if idx != nil {
			for _, d := range idx.Manifests {
				if d.Digest == w.Digest && keyOf(d) == keyOf(w) {
					found = true
					break
				}
			}
		}
		if !found {
			out = append(out, w)
		}
	}
	return out
}
