// Design: buildTree turns the decoded files into typed values in load order, with located errors; it does no I/O.

package imagedef

import (
	"slices"
	"strings"
)

// Tree is a loaded and checked definition tree. Expand turns it into
// variants; a Tree is never modified by Expand, so it can be expanded many
// times with different options.
type Tree struct {
	Root          string   // directory of the root file; includes may not leave it
	Files         []string // every file loaded, in load order
	Images        []*Image // sorted by name
	Distros       map[string]*Distro
	Targets       []*PublishTarget // sorted by name
	DefaultDistro string           // project.default-distro.name, "" if not set
	// DefaultDistroVersion is project.default-distro.version, "" if not set.
	DefaultDistroVersion string

	rules []*rule // tree-wide rules from top-level [variants] tables
}

// Distro is a [distros.NAME] table, merged over all files that declare it.
type Distro struct {
	Name           string
	Description    string
	DefaultVersion string
	Versions       map[string]*DistroVersion
	Files          []string

	src *srcFile // first file that declares the distro
}

// DistroVersion is a [distros.NAME.versions.'X'] table.
type DistroVersion struct {
	Name        string
	Description string
	ReleaseVer  string
	// ImageStores lists the publish targets of this version
	// (outputs.image-stores); HasImageStores tells an empty list from none.
	ImageStores    []string
	HasImageStores bool

	releaseUnresolved bool
	src               *srcFile
	path              keyPath
}

// PublishTarget is a [[resources.NAME]] table: a place images are published to.
type PublishTarget struct {
	Name          string
	File          string
	Labels        []string // publish-labels
	InterfaceType string   // interface-type
	Backend       string   // backend
	ResourceURN   string   // resource-urn
	Images        []TargetImage

	unresolved []string // fields given as "*", as targets.NAME.resource_urn
	src        *srcFile
	path       keyPath
}

// TargetImage names the image a target uses for one architecture (or every
// architecture) and, optionally, one Hyper-V generation.
type TargetImage struct {
	Name             string
	Arch             string // canonical arch, "" for every arch
	HyperVGeneration string // canonical generation, "" for any
}

// loadedFile is one file read and decoded, with its images (decoded per
// file, in parallel with other files; errors are reported by buildTree, in
// load order).
type loadedFile struct {
	src       *srcFile
	values    map[string]any
	images    []*Image // sorted by name
	imagesErr error
	warnings  []Warning // from decoding the images
	defs      []defRef
}

// ignoredResources are azldev's fixed [resources] keys.
var ignoredResources = map[string]bool{"rpm-repos": true, "rpm-repo-sets": true, "rpm-repo-set-templates": true}

// buildTree assembles the tree from decoded files, in load order. It does
// no I/O; the definition paths it returns still need checking.
func buildTree(root string, files []loadedFile) (*Tree, []Warning, []defRef, error) {
	var warnings []Warning
	var defs []defRef
	d := settingsDecoder{warnings: &warnings, defs: &defs}
	t := &Tree{Root: root, Distros: map[string]*Distro{}, Files: make([]string, 0, len(files))}
	images := map[string]*Image{}
	targets := map[string]*PublishTarget{}
	for _, lf := range files {
		f := lf.src
		t.Files = append(t.Files, f.path)
		r := reader{f}
		for _, top := range sortedKeys(lf.values) {
			v := lf.values[top]
			p := keyPath{top}
			var err error
			switch top {
			case "images":
				warnings = append(warnings, lf.warnings...)
				defs = append(defs, lf.defs...)
				err = addImages(lf, images)
			case "distros":
				err = t.addDistros(f, v)
			case "resources":
				err = t.addTargets(f, v, targets, &warnings)
			case "project":
				err = t.addProject(f, v)
			case "variants":
				var tbl map[string]any
				if tbl, err = r.table(p, v); err == nil {
					err = t.addTreeRules(d, f, tbl)
				}
			}
			if err != nil {
				return nil, nil, nil, err
			}
		}
	}
	for _, n := range sortedKeys(images) {
		t.Images = append(t.Images, images[n])
	}
	for _, n := range sortedKeys(targets) {
		t.Targets = append(t.Targets, targets[n])
	}
	warnings = append(warnings, t.checkTreeRules()...)
	return t, warnings, defs, nil
}

// decodeImages decodes the [images] table of one file.
func decodeImages(d settingsDecoder, f *srcFile, v any) ([]*Image, error) {
	tbl, err := reader{f}.table(keyPath{"images"}, v)
	if err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(tbl))
	for _, name := range sortedKeys(tbl) {
		img, err := decodeImage(d, f, name, tbl[name])
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// addImages adds a file's images, rejecting names used before.
func addImages(lf loadedFile, images map[string]*Image) error {
	if lf.imagesErr != nil {
		return lf.imagesErr
	}
	for _, img := range lf.images {
		if prev, ok := images[img.Name]; ok {
			return lf.src.errAt(ErrDuplicateImage, keyPath{"images", img.Name},
				"image %q is already declared in %s; image names must be unique across files", img.Name, prev.File)
		}
		images[img.Name] = img
	}
	return nil
}

func (t *Tree) addDistros(f *srcFile, v any) error {
	r := reader{f}
	tbl, err := r.table(keyPath{"distros"}, v)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(tbl) {
		p := keyPath{"distros", name}
		dt, err := r.table(p, tbl[name])
		if err != nil {
			return err
		}
		d := t.Distros[name]
		if d == nil {
			d = &Distro{Name: name, Versions: map[string]*DistroVersion{}, src: f}
			t.Distros[name] = d
		}
		if !slices.Contains(d.Files, f.path) {
			d.Files = append(d.Files, f.path)
		}
		// Same-name distro tables merge across files: later files win.
		for _, k := range sortedKeys(dt) {
			kp := p.with(k)
			switch k {
			case "description":
				if d.Description, err = r.str(kp, dt[k]); err != nil {
					return err
				}
			case "default-version":
				if d.DefaultVersion, err = r.str(kp, dt[k]); err != nil {
					return err
				}
			case "versions":
				if err := d.addVersions(f, kp, dt[k]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (d *Distro) addVersions(f *srcFile, p keyPath, v any) error {
	r := reader{f}
	vt, err := r.table(p, v)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(vt) {
		vp := p.with(name)
		t, err := r.table(vp, vt[name])
		if err != nil {
			return err
		}
		ver := d.Versions[name]
		if ver == nil {
			ver = &DistroVersion{Name: name}
			d.Versions[name] = ver
		}
		ver.src, ver.path = f, vp
		for _, k := range sortedKeys(t) {
			kp := vp.with(k)
			switch k {
			case "description":
				if ver.Description, err = r.str(kp, t[k]); err != nil {
					return err
				}
			case "release-ver":
				ver.releaseUnresolved = isUnresolved(t[k])
				if ver.releaseUnresolved {
					ver.ReleaseVer = ""
				} else if ver.ReleaseVer, err = r.str(kp, t[k]); err != nil {
					return err
				}
			case "outputs":
				out, err := r.table(kp, t[k])
				if err != nil {
					return err
				}
				if stores, ok := out["image-stores"]; ok {
					if ver.ImageStores, err = r.strList(kp.with("image-stores"), stores); err != nil {
						return err
					}
					ver.HasImageStores = true
				}
			}
		}
	}
	return nil
}

func (t *Tree) addTargets(f *srcFile, v any, targets map[string]*PublishTarget, warnings *[]Warning) error {
	r := reader{f}
	tbl, err := r.table(keyPath{"resources"}, v)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(tbl) {
		p := keyPath{"resources", name}
		if ignoredResources[name] {
			continue
		}
		switch x := tbl[name].(type) {
		case map[string]any:
			// Unknown azldev resource kinds are ignored, but a target written
			// with single brackets is a mistake worth naming.
			for _, k := range []string{"publish-labels", "interface-type", "resource-urn"} {
				if _, ok := x[k]; ok {
					return f.errAt(ErrType, p, "publish target written as a table; expected an array of tables: [[resources.%s]]", name)
				}
			}
			continue
		case []any:
		default:
			return f.errAt(ErrType, p, "expected an array of tables ([[resources.%s]]), found %s", name, typeName(x))
		}
		list, err := r.tableList(p, tbl[name])
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return f.errAt(ErrDuplicateTarget, p, "publish target declared %d times; expected one [[resources.%s]] table", len(list), name)
		}
		if prev, ok := targets[name]; ok {
			return f.errAt(ErrDuplicateTarget, p, "publish target %q is already declared in %s", name, prev.File)
		}
		tg, err := decodeTarget(f, p.with(index(0)), name, list[0], warnings)
		if err != nil {
			return err
		}
		targets[name] = tg
	}
	return nil
}

func decodeTarget(f *srcFile, p keyPath, name string, m map[string]any, warnings *[]Warning) (*PublishTarget, error) {
	r := reader{f}
	tg := &PublishTarget{Name: name, File: f.path, src: f, path: p}
	var err error
	for _, k := range sortedKeys(m) {
		v := m[k]
		kp := p.with(k)
		field := strings.ReplaceAll(k, "-", "_")
		switch k {
		case "interface-type", "backend", "resource-urn":
			var s string
			if isUnresolved(v) {
				tg.unresolved = append(tg.unresolved, "targets."+keyPath{name}.String()+"."+field)
			} else if s, err = r.str(kp, v); err != nil {
				return nil, err
			}
			switch k {
			case "interface-type":
				tg.InterfaceType = s
			case "backend":
				tg.Backend = s
			default:
				tg.ResourceURN = s
			}
		case "publish-labels":
			if tg.Labels, err = r.strList(kp, v); err != nil {
				return nil, err
			}
		case "images":
			list, err := r.tableList(kp, v)
			if err != nil {
				return nil, err
			}
			for i, im := range list {
				ti, err := decodeTargetImage(f, kp.with(index(i)), im)
				if err != nil {
					return nil, err
				}
				tg.Images = append(tg.Images, ti)
			}
		default:
			*warnings = append(*warnings, f.warnAt(kp, "unknown publish target key %q ignored; known keys: publish-labels, interface-type, backend, resource-urn, images", k))
		}
	}
	return tg, nil
}

func decodeTargetImage(f *srcFile, p keyPath, m map[string]any) (TargetImage, error) {
	r := reader{f}
	var ti TargetImage
	for _, k := range sortedKeys(m) {
		kp := p.with(k)
		switch k {
		case "name":
			s, err := r.str(kp, m[k])
			if err != nil {
				return ti, err
			}
			ti.Name = s
		case "arch", "hyperv-generation":
			b := &builtinDims[bArch]
			if k != "arch" {
				b = &builtinDims[bGeneration]
			}
			s, err := r.str(kp, m[k])
			if err != nil {
				return ti, err
			}
			c, ok := b.Normalize(s)
			if !ok {
				return ti, f.errAt(ErrUnknownValue, kp, "unknown %s %q; expected one of: %s", b.What, s, b.Accepted())
			}
			if k == "arch" {
				ti.Arch = c
			} else {
				ti.HyperVGeneration = c
			}
		default:
			return ti, f.errAt(ErrValue, kp, "unknown key %q in a target image; expected name and optionally arch and hyperv-generation", k)
		}
	}
	// An entry without arch serves every arch (one repository for a
	// multi-arch index); an entry with the variant's arch wins over it.
	return ti, nil
}

func (t *Tree) addProject(f *srcFile, v any) error {
	r := reader{f}
	p := keyPath{"project"}
	tbl, err := r.table(p, v)
	if err != nil {
		return err
	}
	dd, ok := tbl["default-distro"]
	if !ok {
		return nil
	}
	dp := p.with("default-distro")
	if s, ok := dd.(string); ok {
		t.DefaultDistro = s
		return nil
	}
	ref, err := r.table(dp, dd)
	if err != nil {
		return err
	}
	if n, ok := ref["name"]; ok {
		if t.DefaultDistro, err = r.str(dp.with("name"), n); err != nil {
			return err
		}
	}
	if n, ok := ref["version"]; ok {
		if t.DefaultDistroVersion, err = r.str(dp.with("version"), n); err != nil {
			return err
		}
	}
	return nil
}

// addTreeRules reads a top-level [variants] table: rules for every image.
func (t *Tree) addTreeRules(d settingsDecoder, f *srcFile, tbl map[string]any) error {
	for _, k := range sortedKeys(tbl) {
		p := keyPath{"variants", k}
		if k != "exclude" && k != "when" {
			return f.errAt(ErrValue, p, "unknown key %q in the top-level [variants] table; expected exclude and when (dimensions are declared per image)", k)
		}
		rules, err := decodeRules(f, p, k == "exclude", tbl[k], nil)
		if err != nil {
			return err
		}
		for _, ru := range rules {
			if ru.set != nil {
				if _, err := d.decode(f, ru.path.with("set"), ru.set, modeRule); err != nil {
					return err
				}
			}
		}
		t.rules = append(t.rules, rules...)
	}
	return nil
}

// checkTreeRules warns about tree-wide rules that name a dimension no image
// has, or a value no image declares.
func (t *Tree) checkTreeRules() []Warning {
	var ws []Warning
	for _, ru := range t.rules {
		for _, c := range ru.conds {
			if c.dim == "image" {
				for _, v := range c.values {
					if !slices.ContainsFunc(t.Images, func(img *Image) bool { return img.Name == v }) {
						ws = append(ws, ru.src.warnAt(ru.condPath(c), "no image is called %q", v))
					}
				}
				continue
			}
			if b, _ := builtinByName(c.dim); b != nil {
				continue
			}
			found := false
			for _, img := range t.Images {
				if img.dim(c.dim) != nil {
					found = true
					break
				}
			}
			if !found {
				ws = append(ws, ru.src.warnAt(ru.condPath(c), "no image has a dimension %q, so this rule never applies", c.dim))
			}
		}
	}
	return ws
}

// condPath is the key path of one condition of a rule.
func (ru *rule) condPath(c cond) keyPath {
	if ru.exclude {
		return ru.path.with(c.dim)
	}
	return ru.path.with("match", c.dim)
}
