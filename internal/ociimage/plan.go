package ociimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultTag is the per-boot-mode tag template: one index over the
// architectures per boot mode, named as IronCore's os-images publishes them
// (`<version>-kvm`, `<version>-metal`; with arch tags `<version>-kvm-amd64`).
const DefaultTag = "{{ .Version }}-{{ .Variant }}"

// Index modes: what each build does with the indexes.
const (
	// IndexMerge (default): push the manifests and arch tags, then merge
	// this build's entries into every index tag.
	IndexMerge = "merge"
	// IndexNone: push the manifests and arch tags only; a final run with
	// IndexOnly writes the indexes (repositories with immutable tags).
	IndexNone = "none"
	// IndexOnly: push nothing of this build; (re)build every index tag of
	// the version from the arch tags the builds wrote.
	IndexOnly = "only"
)

// IroncoreVariant is IronCore's name of a boot mode in tags (os-images'
// `-kvm` / `-metal`) and in ironcore-image's OCI-SPEC.md (`metal`).
func IroncoreVariant(bootMode string) string {
	switch bootMode {
	case Virtualization:
		return "kvm"
	case Baremetal:
		return "metal"
	}
	return bootMode
}

// specVariant is the value of the un-namespaced `variant` manifest
// annotation of ironcore-image's OCI-SPEC.md: `virtualization` or `metal`.
func specVariant(bootMode string) string {
	if bootMode == Baremetal {
		return "metal"
	}
	return bootMode
}

// knownArchs and knownBootModes are the combinations an index tag can
// gather from other builds' arch tags.
var (
	knownArchs     = []string{"amd64", "arm64"}
	knownBootModes = []string{Virtualization, Baremetal}
)

// Options say what to publish besides the entries' files.
type Options struct {
	ImageName      string // annotation and manifest title; optional
	Version        string // annotation; used by the default tag
	SourceRevision string // org.opencontainers.image.revision; optional
	Image          string // the matrix image (template data)
	Key            string // the variant key (template data)
	// Tag is the template of each boot mode's index tag; default DefaultTag.
	// Data: .Version .Variant (kvm|metal) .Platform (virtualization|
	// baremetal) .Arch (amd64|arm64) .Image .ImageName .Key.
	Tag string
	// ExtraTags are more index tags (templates as Tag).
	ExtraTags []string
	// ArchTags also tags each manifest as "<tag>-<arch>" (ironcore-image's
	// --push-sub-manifests).
	ArchTags bool
	// CombinedTag, when set, is the template of one more index holding every
	// architecture x boot mode entry.
	CombinedTag string
	// PlatformVariant sets platform.variant = boot mode in the combined
	// index. containerd then no longer matches "linux/<arch>" there.
	PlatformVariant bool
	// CombinedFirst is the boot mode whose entries come first in the
	// combined index (consumers that ignore platform.variant take the
	// first entry of their architecture); default Baremetal.
	CombinedFirst string
	// IndexMode is IndexMerge (default), IndexNone or IndexOnly.
	IndexMode string
	// Created is org.opencontainers.image.created; zero leaves it out.
	Created time.Time
	// Compression of layers: none (default), gzip or zstd.
	Compression string
	// WorkDir holds compressed copies of layers; default os.TempDir().
	WorkDir string
	// Force replaces what a tag holds when it is not an index, is corrupt,
	// or holds an entry for the same platform not written by this package.
	Force bool
}

// Created returns the reproducible creation time: SOURCE_DATE_EPOCH (Unix
// seconds) when getenv gives one, else now.
func Created(getenv func(string) string, now time.Time) (time.Time, error) {
	s := strings.TrimSpace(getenv("SOURCE_DATE_EPOCH"))
	if s == "" {
		return now.UTC().Truncate(time.Second), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Manifest is one planned image manifest.
type Manifest struct {
	Arch     string // amd64 or arm64
	BootMode string
	Layers   []Layer
	Config   []byte // the config blob
	Raw      []byte // the manifest
	Digest   v1.Hash
	// Descriptor is the entry for indexes (platform and annotations set).
	Descriptor v1.Descriptor
}

// IndexTag is one index to merge this build's entries into.
type IndexTag struct {
	Tag             string
	Manifests       []int // into Plan.Manifests, in index order
	PlatformVariant bool
	Annotations     map[string]string
	// First is the boot mode whose entries come first.
	First string
	// Sources are the arch tags of the other architecture x boot mode
	// combinations that belong in this index: the record every build
	// leaves, from which a missing entry is added.
	Sources []ArchSource
}

// ArchSource is the arch tag another build writes for one entry.
type ArchSource struct {
	Tag, Arch, BootMode string
}

// ArchTag tags one manifest directly.
type ArchTag struct {
	Tag      string
	Manifest int
}

// Plan is everything a publish writes, as data.
type Plan struct {
	Manifests []*Manifest
	Indexes   []IndexTag
	ArchTags  []ArchTag
	Force     bool
	IndexMode string
	cleanup   func()
}

// Close removes the compressed copies of layers, if any.
func (p *Plan) Close() {
	if p != nil && p.cleanup != nil {
		p.cleanup()
		p.cleanup = nil
	}
}

// blobBytes returns the number and total size of the plan's distinct
// blobs (layers and configs).
func (p *Plan) blobBytes() (int, int64) {
	seen := map[v1.Hash]int64{}
	for _, m := range p.Manifests {
		for _, l := range m.Layers {
			seen[l.Digest] = l.Size
		}
		seen[digestOf(m.Config)] = int64(len(m.Config))
	}
	var n int64
	for _, s := range seen {
		n += s
	}
	return len(seen), n
}

// TagData is what tag templates see.
type TagData struct {
	Version, Variant, Platform, Arch, Image, ImageName, Key string
}

var tagRe = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// RenderTag renders a tag template and checks the result is a valid tag.
func RenderTag(field, tmpl string, d TagData) (string, error) {
	t, err := template.New(field).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", field, tmpl, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("%s %q: %w", field, tmpl, err)
	}
	tag := b.String()
	if !tagRe.MatchString(tag) {
		hint := ""
		if strings.Contains(tmpl, ".Version") && d.Version == "" {
			hint = "; the version is empty"
		}
		return "", fmt.Errorf("%s %q renders to %q: %w (want [A-Za-z0-9_][A-Za-z0-9._-]{0,127}%s)", field, tmpl, tag, ErrBadTag, hint)
	}
	return tag, nil
}

// NewPlan validates the entries, prepares their layers (trusting recorded
// sha256 sums; hashing or compressing only what must be) and plans the
// manifests, the indexes per tag and the per-arch tags. With IndexOnly it
// plans only the index tags of the version, from the other builds' arch
// tags, and the entries need no files. Close the plan when done with it.
func NewPlan(entries []Entry, o Options) (*Plan, error) {
	mode := o.IndexMode
	if mode == "" {
		mode = IndexMerge
	}
	switch mode {
	case IndexMerge, IndexNone:
		if len(entries) == 0 {
			return nil, fmt.Errorf("no entries to publish")
		}
	case IndexOnly:
		if !o.ArchTags {
			return nil, fmt.Errorf("index mode %q builds the indexes from the arch tags: turn arch tags on", IndexOnly)
		}
	default:
		return nil, fmt.Errorf("index mode %q: want %q, %q or %q", o.IndexMode, IndexMerge, IndexNone, IndexOnly)
	}
	switch o.CombinedFirst {
	case "", Virtualization, Baremetal:
	default:
		return nil, fmt.Errorf("combined index order: first boot mode %q: want %q or %q", o.CombinedFirst, Baremetal, Virtualization)
	}
	if _, err := compressionSuffix(o.Compression); err != nil {
		return nil, err
	}
	prep := &layerPreparer{compression: o.Compression, workDir: o.WorkDir}
	p := &Plan{Force: o.Force, IndexMode: mode, cleanup: prep.cleanup}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	seen := map[string]string{}
	for _, e := range entries {
		if mode == IndexOnly {
			break
		}
		arch, err := OCIArch(e.Arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.name(), err)
		}
		e.Arch = arch
		specs, cmdFile, err := selectLayers(e)
		if err != nil {
			return nil, err
		}
		k := arch + "/" + e.BootMode
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s and %s are both %s: one manifest per architecture and boot mode", prev, e.name(), k)
		}
		seen[k] = e.name()
		cmdline := e.KernelCmdline
		if cmdFile != nil {
			b, err := readSmall(cmdFile.Path, 64<<10)
			if err != nil {
				return nil, fmt.Errorf("%s: cmdline file: %w", e.name(), err)
			}
			cmdline = strings.TrimSpace(string(b))
		}
		m := &Manifest{Arch: arch, BootMode: e.BootMode}
		for _, s := range specs {
			l, err := prep.prepare(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.name(), err)
			}
			m.Layers = append(m.Layers, l)
		}
		if err := m.build(cmdline, o); err != nil {
			return nil, err
		}
		p.Manifests = append(p.Manifests, m)
	}
	if err := p.planTags(o); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

func readSmall(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s has %d bytes; a kernel command line has at most %d", path, st.Size(), limit)
	}
	return os.ReadFile(path)
}

type configFile struct {
	CommandLine string `json:"commandLine,omitempty"`
}

// build computes the config blob, the manifest and its index descriptor.
func (m *Manifest) build(cmdline string, o Options) error {
	cfg, err := json.Marshal(configFile{CommandLine: cmdline})
	if err != nil {
		return err
	}
	m.Config = cfg
	common := entryAnnotations(m.Arch, m.BootMode, o)
	ann := map[string]string{
		AnnotationSpecVariant: specVariant(m.BootMode),
		AnnotationSpecArch:    m.Arch,
	}
	for k, v := range common {
		ann[k] = v
	}
	if o.ImageName != "" {
		ann[AnnotationTitle] = o.ImageName
	}
	if !o.Created.IsZero() {
		ann[AnnotationCreated] = o.Created.UTC().Format(time.RFC3339)
	}
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: MediaTypeConfig, Size: int64(len(cfg)), Digest: digestOf(cfg)},
		Annotations:   ann,
	}
	for _, l := range m.Layers {
		man.Layers = append(man.Layers, v1.Descriptor{
			MediaType:   types.MediaType(l.MediaType),
			Size:        l.Size,
			Digest:      l.Digest,
			Annotations: map[string]string{AnnotationTitle: l.Title},
		})
	}
	raw, err := json.Marshal(man)
	if err != nil {
		return err
	}
	m.Raw = raw
	m.Digest = digestOf(raw)
	m.Descriptor = v1.Descriptor{
		MediaType:   types.OCIManifestSchema1,
		Size:        int64(len(raw)),
		Digest:      m.Digest,
		Platform:    &v1.Platform{OS: "linux", Architecture: m.Arch},
		Annotations: common,
	}
	return nil
}

// entryAnnotations go on the manifest and on its index descriptor.
func entryAnnotations(arch, bootMode string, o Options) map[string]string {
	a := map[string]string{AnnotationBootMode: bootMode, AnnotationArch: arch}
	if o.ImageName != "" {
		a[AnnotationImage] = o.ImageName
	}
	if o.Version != "" {
		a[AnnotationVersion] = o.Version
	}
	if o.SourceRevision != "" {
		a[AnnotationRevision] = o.SourceRevision
	}
	return a
}

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// planTags renders the tags: per boot mode the index tag (and extra tags),
// per manifest "<tag>-<arch>", and the combined tag; and, for each index
// tag, the arch tags of the other combinations that belong in it. Indexes
// and their entries come out in a fixed order (see entryLess).
func (p *Plan) planTags(o Options) error {
	tmpl := o.Tag
	if tmpl == "" {
		tmpl = DefaultTag
	}
	first := o.CombinedFirst
	if first == "" {
		first = Baremetal
	}
	idx := map[string]*IndexTag{}
	combined := map[string]bool{}
	var tags []string
	ensure := func(tag string, isCombined bool) (*IndexTag, error) {
		it, ok := idx[tag]
		if !ok {
			it = &IndexTag{Tag: tag, PlatformVariant: isCombined && o.PlatformVariant, Annotations: indexAnnotations(o), First: first}
			idx[tag] = it
			combined[tag] = isCombined
			tags = append(tags, tag)
		} else if combined[tag] != isCombined {
			return nil, fmt.Errorf("tag %q is both a per-boot-mode index and the combined index; give combined_tag a different template", tag)
		}
		return it, nil
	}
	data := func(arch, bootMode string) TagData {
		return TagData{Version: o.Version, Variant: IroncoreVariant(bootMode), Platform: bootMode, Arch: arch, Image: o.Image, ImageName: o.ImageName, Key: o.Key}
	}
	type indexRole struct {
		tag      string
		combined bool
	}
	// indexTagsOf renders the index tags one combination belongs to.
	indexTagsOf := func(d TagData) ([]indexRole, error) {
		tag, err := RenderTag("tag", tmpl, d)
		if err != nil {
			return nil, err
		}
		out := []indexRole{{tag, false}}
		for j, et := range o.ExtraTags {
			tag, err := RenderTag(fmt.Sprintf("extra_tags[%d]", j), et, d)
			if err != nil {
				return nil, err
			}
			out = append(out, indexRole{tag, false})
		}
		if o.CombinedTag != "" {
			tag, err := RenderTag("combined_tag", o.CombinedTag, d)
			if err != nil {
				return nil, err
			}
			out = append(out, indexRole{tag, true})
		}
		return out, nil
	}
	archTagOf := func(d TagData) (string, error) { return RenderTag("tag", tmpl+"-{{ .Arch }}", d) }
	archTags := map[string]int{}
	mine := map[[2]string]bool{}
	for i, m := range p.Manifests {
		d := data(m.Arch, m.BootMode)
		roles, err := indexTagsOf(d)
		if err != nil {
			return err
		}
		for _, r := range roles {
			it, err := ensure(r.tag, r.combined)
			if err != nil {
				return err
			}
			if !slices.Contains(it.Manifests, i) {
				it.Manifests = append(it.Manifests, i)
			}
		}
		if o.ArchTags {
			at, err := archTagOf(d)
			if err != nil {
				return err
			}
			if prev, dup := archTags[at]; dup && prev != i {
				return fmt.Errorf("tag %q would point at two manifests (%s/%s and %s/%s): the tag template must tell boot modes apart",
					at, p.Manifests[prev].Arch, p.Manifests[prev].BootMode, m.Arch, m.BootMode)
			}
			archTags[at] = i
		}
		mine[[2]string{m.Arch, m.BootMode}] = true
	}
	if o.ArchTags {
		for _, bm := range knownBootModes {
			for _, arch := range knownArchs {
				if mine[[2]string{arch, bm}] {
					continue
				}
				d := data(arch, bm)
				roles, err := indexTagsOf(d)
				if err != nil {
					return err
				}
				at, err := archTagOf(d)
				if err != nil {
					return err
				}
				for _, r := range roles {
					if p.IndexMode == IndexOnly {
						if _, err := ensure(r.tag, r.combined); err != nil {
							return err
						}
					}
					if it := idx[r.tag]; it != nil && combined[r.tag] == r.combined {
						it.Sources = append(it.Sources, ArchSource{Tag: at, Arch: arch, BootMode: bm})
					}
				}
			}
		}
	}
	sort.Strings(tags)
	for _, t := range tags {
		it := idx[t]
		sort.SliceStable(it.Manifests, func(a, b int) bool {
			ma, mb := p.Manifests[it.Manifests[a]], p.Manifests[it.Manifests[b]]
			return entryLess(first, ma.BootMode, ma.Arch, mb.BootMode, mb.Arch)
		})
		p.Indexes = append(p.Indexes, *it)
	}
	for t, i := range archTags {
		p.ArchTags = append(p.ArchTags, ArchTag{Tag: t, Manifest: i})
	}
	sort.Slice(p.ArchTags, func(a, b int) bool { return p.ArchTags[a].Tag < p.ArchTags[b].Tag })
	return nil
}

func indexAnnotations(o Options) map[string]string {
	a := map[string]string{}
	if o.ImageName != "" {
		a[AnnotationTitle] = o.ImageName
	}
	if o.Version != "" {
		a[AnnotationVersion] = o.Version
	}
	if o.SourceRevision != "" {
		a[AnnotationRevision] = o.SourceRevision
	}
	if !o.Created.IsZero() {
		a[AnnotationCreated] = o.Created.UTC().Format(time.RFC3339)
	}
	return a
}

// Entry order in every index: the boot mode first (default baremetal:
// boot-operator takes the first entry of its architecture and can only
// PXE-boot a manifest with kernel and initramfs), then the other known boot
// mode, other boot modes by name, entries without a boot mode last; within
// a boot mode amd64, arm64, then other architectures by name.
func bootModeRank(first, b string) int {
	switch b {
	case first:
		return 0
	case Virtualization, Baremetal:
		return 1
	case "":
		return 3
	}
	return 2
}

func archRank(a string) int {
	switch a {
	case "amd64":
		return 0
	case "arm64":
		return 1
	}
	return 2
}

func entryLess(first, bootA, archA, bootB, archB string) bool {
	if ra, rb := bootModeRank(first, bootA), bootModeRank(first, bootB); ra != rb {
		return ra < rb
	}
	if bootA != bootB {
		return bootA < bootB
	}
	if ra, rb := archRank(archA), archRank(archB); ra != rb {
		return ra < rb
	}
	return archA < archB
}
