// Package release keeps the state of a release, as Alpine's cloud image
// build keeps it (its metadata YAML per image in storage): one document per
// variant and revision, recording what each step made (files with their
// sha256, the uploaded blob, gallery versions, OCI manifests and tags) and
// when (built, published, released). The matrix reads it to say which
// steps are pending for each variant, the components record into it as they
// finish, and a final step makes the release manifest from it.
//
// Design: a document has one writer at a time (one build per variant; its
// components run in turn), and every write is whole and conditional
// (write-then-rename under a lock in a directory, If-Match in blob storage),
// so a killed run leaves the last truthful state and two runners never lose
// each other's records. The destinations (blob MD5, version source,
// manifest digest) stay the judge of what exists: the state prunes work, the
// components still check before they skip.
package release

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Steps of a release, in order; a stage names the last step a run goes to.
const (
	StepBuild   = "build"   // the disk (and what the builder writes)
	StepPublish = "publish" // every publish target of the variant, as a pre-release
	StepRelease = "release" // promotion: gallery versions into latest, moving tags
)

// Steps lists the steps in order.
var Steps = []string{StepBuild, StepPublish, StepRelease}

// Schema is the document format's version.
const Schema = 1

// Doc is the state of one revision of one variant.
type Doc struct {
	Schema   int    `json:"schema"`
	Release  string `json:"release"` // the release version (the variant's release_ver, else distro_version)
	Key      string `json:"key"`     // the variant key
	Image    string `json:"image"`
	Name     string `json:"name"` // <image>-<release>-<rest of the key>-r<revision>, Alpine's naming
	Revision int    `json:"revision"`

	Arch             string `json:"arch,omitempty"`
	Platform         string `json:"platform,omitempty"`
	Firmware         string `json:"firmware,omitempty"`
	HyperVGeneration string `json:"hyperv_generation,omitempty"`

	Built *time.Time `json:"built,omitempty"`
	// Files are what the build made, by role, with base names only (paths
	// differ between runners).
	Files []File `json:"files,omitempty"`
	// Targets records each publish target of the variant.
	Targets []Target `json:"targets,omitempty"`

	Updated time.Time `json:"updated"`
}

// File is one built file.
type File struct {
	Role   string `json:"role"`
	Name   string `json:"name"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Target is what was done for one publish target.
type Target struct {
	Name          string `json:"name"`
	InterfaceType string `json:"interface_type"`

	Uploaded  *time.Time `json:"uploaded,omitempty"`
	Published *time.Time `json:"published,omitempty"`
	Released  *time.Time `json:"released,omitempty"`

	// Azure Compute Gallery.
	Blob     *Blob            `json:"blob,omitempty"`
	Versions []GalleryVersion `json:"gallery_versions,omitempty"`
	// OCI registry.
	OCI *OCI `json:"oci,omitempty"`
}

// Blob is an uploaded page blob.
type Blob struct {
	URL  string `json:"url"` // never with a SAS
	MD5  string `json:"md5"` // base64, as Content-MD5
	Size int64  `json:"size"`
	// Source is the sha256 of the disk it holds.
	Source string `json:"source,omitempty"`
}

// GalleryVersion is one image version in one definition.
type GalleryVersion struct {
	ID                string   `json:"id"` // the version's resource id
	Generation        string   `json:"hyperv_generation,omitempty"`
	Regions           []string `json:"regions,omitempty"`
	ExcludeFromLatest bool     `json:"exclude_from_latest"`
}

// OCI is what was pushed to a registry repository.
type OCI struct {
	Repository string        `json:"repository"`
	Manifests  []OCIManifest `json:"manifests,omitempty"`
	Indexes    []Index       `json:"indexes,omitempty"`
	// Tags are the version tags written when published; MovingTags those
	// written when released (latest-style extra tags).
	Tags       []string `json:"tags,omitempty"`
	MovingTags []string `json:"moving_tags,omitempty"`
}

// OCIManifest is one pushed image manifest.
type OCIManifest struct {
	Arch     string `json:"arch"`
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// Index is one index tag and the digest it held after the push.
type Index struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

// ImageName is Alpine's image name: the image, the release, the rest of
// the key, and r<revision>.
func ImageName(image, key, release string, revision int) string {
	head, rest := key, ""
	if image != "" && strings.HasPrefix(key, image+"-") {
		head, rest = image, key[len(image)+1:]
	}
	parts := []string{head}
	if release != "" {
		parts = append(parts, release)
	}
	if rest != "" {
		parts = append(parts, rest)
	}
	return strings.Join(parts, "-") + "-r" + strconv.Itoa(revision)
}

// Target returns the record of the target called name, adding it when
// missing.
func (d *Doc) Target(name, interfaceType string) *Target {
	for i := range d.Targets {
		if d.Targets[i].Name == name {
			return &d.Targets[i]
		}
	}
	d.Targets = append(d.Targets, Target{Name: name, InterfaceType: interfaceType})
	slices.SortFunc(d.Targets, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	for i := range d.Targets {
		if d.Targets[i].Name == name {
			return &d.Targets[i]
		}
	}
	return nil // not reached
}

// Published reports whether every named target is published (false for
// no targets: nothing is published then).
func (d *Doc) Published(targets []string) bool {
	return d.all(targets, func(t *Target) bool { return t.Published != nil })
}

// Released reports whether every named target is released.
func (d *Doc) Released(targets []string) bool {
	return d.all(targets, func(t *Target) bool { return t.Released != nil })
}

func (d *Doc) all(targets []string, done func(*Target) bool) bool {
	if len(targets) == 0 {
		return false
	}
	for _, n := range targets {
		i := slices.IndexFunc(d.Targets, func(t Target) bool { return t.Name == n })
		if i < 0 || !done(&d.Targets[i]) {
			return false
		}
	}
	return true
}

// Pending lists the steps up to stage that are not done for a variant
// publishing to targets (names). A variant without targets has nothing to
// publish or release: those steps are never pending for it. A nil doc has
// done nothing.
func Pending(d *Doc, stage string, targets []string) ([]string, error) {
	last := slices.Index(Steps, stage)
	if last < 0 {
		return nil, fmt.Errorf("stage %q: expected one of %s", stage, strings.Join(Steps, ", "))
	}
	if d == nil {
		d = &Doc{}
	}
	pending := []string{}
	if d.Built == nil {
		pending = append(pending, StepBuild)
	}
	if last >= 1 && len(targets) > 0 && !d.Published(targets) {
		pending = append(pending, StepPublish)
	}
	if last >= 2 && len(targets) > 0 && !d.Released(targets) {
		pending = append(pending, StepRelease)
	}
	return pending, nil
}

// Parse reads a document; where names it in errors.
func Parse(where string, b []byte) (*Doc, error) {
	var d Doc
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("state document %s does not parse: %w", where, err)
	}
	if d.Schema != Schema {
		return nil, fmt.Errorf("state document %s has schema %d; this plugin reads schema %d", where, d.Schema, Schema)
	}
	if d.Key == "" || d.Revision < 0 {
		return nil, fmt.Errorf("state document %s: key %q, revision %d: want a key and a revision >= 0", where, d.Key, d.Revision)
	}
	return &d, nil
}

// Marshal encodes a document (indented, keys in struct order).
func (d *Doc) Marshal() []byte {
	b, _ := json.MarshalIndent(d, "", "  ") // plain data always marshals
	return append(b, '\n')
}
