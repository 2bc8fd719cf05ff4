package ociimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/osimage/packer-plugin-osimage/internal/signing"
)

// Attachments are what goes next to each pushed manifest: never as a
// layer of the image (ironcore-image refuses layer types it does not know),
// always as separate manifests that name it.
type Attachments struct {
	// SBOM is the image's software bill of materials (a file), pushed as
	// an OCI 1.1 referrer of the manifest: an artifact manifest whose
	// subject is the manifest and whose artifactType is SBOMMediaType. The
	// referrers API serves it where the registry has one; elsewhere
	// go-containerregistry keeps the fallback tag sha256-<digest> (an
	// index of the referrers), as the distribution spec says. "" for none.
	SBOM          string
	SBOMMediaType string // application/spdx+json or application/vnd.cyclonedx+json
	// Signer signs each manifest as cosign does: a simple-signing payload
	// in an image tagged sha256-<digest>.sig, which `cosign verify --key`
	// reads. nil for no signature.
	Signer *signing.Signer
	// Created is the referrer's org.opencontainers.image.created.
	Created string
}

// AttachResult is what Attach wrote.
type AttachResult struct {
	SBOMReferrers []string // references of the SBOM referrer manifests
	Signatures    []string // signature tags written
	Unchanged     []string // signatures already there (same payload, this key)
}

// emptyConfig is the OCI 1.1 empty descriptor's content ("{}").
var emptyConfig = []byte("{}")

// Attach pushes the attachments of the manifests Publish pushed to the
// registry d (an OCI layout destination has no referrers here: an error).
func Attach(ctx context.Context, d Destination, manifests []ManifestResult, a Attachments) (*AttachResult, error) {
	res := &AttachResult{}
	if a.SBOM == "" && a.Signer == nil {
		return res, nil
	}
	if d.Layout != "" {
		return nil, errors.New("SBOM referrers and signatures are pushed to registries; this destination is an OCI layout")
	}
	t, err := newRegistryTarget(ctx, d)
	if err != nil {
		return nil, err
	}
	var sbom []byte
	if a.SBOM != "" {
		if sbom, err = os.ReadFile(a.SBOM); err != nil {
			return nil, fmt.Errorf("SBOM: %w", err)
		}
	}
	for _, m := range manifests {
		h, err := v1.NewHash(m.Digest)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.Ref, err)
		}
		subject, err := t.describeManifest(ctx, h)
		if err != nil {
			return nil, t.classify("read manifest "+m.Digest+" of", err)
		}
		if sbom != nil {
			ref, err := t.pushSBOM(ctx, subject, sbom, a, filepath.Base(a.SBOM))
			if err != nil {
				return nil, t.classify("push the SBOM referrer of "+m.Digest+" to", err)
			}
			res.SBOMReferrers = append(res.SBOMReferrers, ref)
		}
		if a.Signer != nil {
			tag, wrote, err := t.sign(ctx, h, a.Signer)
			if err != nil {
				return nil, t.classify("push the signature of "+m.Digest+" to", err)
			}
			if wrote {
				res.Signatures = append(res.Signatures, tag)
			} else {
				res.Unchanged = append(res.Unchanged, tag)
			}
		}
	}
	return res, nil
}

// describeManifest is the descriptor of a manifest in the repository.
func (t *registryTarget) describeManifest(ctx context.Context, h v1.Hash) (v1.Descriptor, error) {
	desc, err := remote.Head(t.repo.Digest(h.String()), t.opts...)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, nil
}

// pushSBOM pushes the SBOM blob, the empty config and the referrer
// manifest (by its digest: a referrer needs no tag).
func (t *registryTarget) pushSBOM(ctx context.Context, subject v1.Descriptor, sbom []byte, a Attachments, title string) (string, error) {
	mt := types.MediaType(a.SBOMMediaType)
	if mt == "" {
		mt = "application/spdx+json"
	}
	for _, blob := range []struct {
		data []byte
		mt   types.MediaType
	}{{sbom, mt}, {emptyConfig, "application/vnd.oci.empty.v1+json"}} {
		if err := remote.WriteLayer(t.repo, static.NewLayer(blob.data, blob.mt), t.opts...); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(sbom)
	ann := map[string]string{"org.opencontainers.image.title": title}
	if a.Created != "" {
		ann["org.opencontainers.image.created"] = a.Created
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"artifactType":  mt,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digestOf(emptyConfig).String(), "size": len(emptyConfig), "data": "e30="},
		"layers": []any{map[string]any{"mediaType": mt, "digest": "sha256:" + hex.EncodeToString(sum[:]), "size": len(sbom),
			"annotations": map[string]string{"org.opencontainers.image.title": title}}},
		"subject":     subject,
		"annotations": ann,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	ref := t.repo.Digest(digestOf(raw).String())
	if err := remote.Put(ref, rawManifest{raw, types.OCIManifestSchema1}, t.opts...); err != nil {
		return "", err
	}
	return ref.String(), nil
}

// sign writes cosign's signature image for the manifest, unless the
// signature tag already holds a signature of this payload that this key
// made (signatures are not deterministic: a new one every run would rewrite
// the tag, which immutable repositories refuse).
func (t *registryTarget) sign(ctx context.Context, h v1.Hash, s *signing.Signer) (tag string, wrote bool, err error) {
	payload := signing.Payload(t.repo.Name(), h.String())
	tag = signing.SignatureTag(h.String())
	ref := t.repo.Tag(tag)
	if img, err := remote.Image(ref, t.opts...); err == nil {
		if m, err := img.Manifest(); err == nil {
			for _, l := range m.Layers {
				if l.MediaType != signing.PayloadMediaType || l.Annotations[signing.SignatureAnnotation] == "" {
					continue
				}
				layer, err := img.LayerByDigest(l.Digest)
				if err != nil {
					continue
				}
				rc, err := layer.Compressed()
				if err != nil {
					continue
				}
				var b bytes.Buffer
				_, err = b.ReadFrom(rc)
				rc.Close()
				if err == nil && bytes.Equal(b.Bytes(), payload) && signing.Verify(s.PublicKeyPEM(), payload, l.Annotations[signing.SignatureAnnotation]) == nil {
					return ref.String(), false, nil
				}
			}
		}
	}
	sig, err := s.SignBytes(payload)
	if err != nil {
		return "", false, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:       static.NewLayer(payload, signing.PayloadMediaType),
		Annotations: map[string]string{signing.SignatureAnnotation: sig},
	})
	if err != nil {
		return "", false, err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	if err := remote.Write(ref, img, t.opts...); err != nil {
		return "", false, err
	}
	return ref.String(), true, nil
}
