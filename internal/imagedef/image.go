package imagedef

import (
	"github.com/osimage/packer-plugin-osimage/internal/variant"

	"slices"
	"strings"
)

// Image is one [images.NAME] table.
type Image struct {
	Name       string
	File       string      // file that declares the image
	Distro     string      // "" when the image does not name one
	Dimensions []Dimension // dimensions in expansion order (see the package comment)

	src      *srcFile
	settings map[string]any // the image table without distro and variants
	base     *settings      // settings decoded, used by variants no when rule matches
	rules    []*rule        // the image's exclude and when rules, in file order
}

// Dimension is one axis of an image's variant matrix.
type Dimension struct {
	Name     string   // arch, platform, hyperv_generation, firmware, or a user dimension
	Values   []string // canonical values, in declared order
	Declared bool     // false when the values are the defaults
	builtin  int      // index into builtinDims, or -1
}

// rule is an exclude rule or a when rule.
type rule struct {
	src     *srcFile
	path    keyPath // e.g. images.vm-base.variants.when[0]
	exclude bool
	conds   []cond
	set     map[string]any // when: settings to merge (definition paths absolute)
	unset   [][]string     // when: keys to remove before merging
}

// cond requires a dimension to have one of values.
type cond struct {
	dim    string
	values []string // canonical values for built-in dimensions
}

// reservedDimNames cannot be user dimensions.
var reservedDimNames = map[string]bool{"image": true, "exclude": true, "when": true}

func decodeImage(d settingsDecoder, f *srcFile, name string, v any) (*Image, error) {
	r := reader{f}
	path := keyPath{"images", name}
	tbl, err := r.table(path, v)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(name) == "" {
		return nil, f.errAt(ErrValue, path, "empty image name")
	}
	img := &Image{Name: name, File: f.path, src: f}
	if v, ok := tbl["distro"]; ok {
		if isUnresolved(v) {
			return nil, f.errAt(ErrValue, path.with("distro"), `"*" is not allowed here; expected the name of a [distros.NAME] table`)
		}
		if img.Distro, err = r.str(path.with("distro"), v); err != nil {
			return nil, err
		}
	}
	variants := tbl["variants"]
	// The settings are the rest of the table, which belongs to this file's
	// decoded values: it is kept, without distro and variants.
	delete(tbl, "distro")
	delete(tbl, "variants")
	img.settings = tbl
	var pbuf [8]string
	if err := img.decodeVariants(f, tempPath(pbuf[:], path, "variants"), variants); err != nil {
		return nil, err
	}
	if img.base, err = d.decode(f, path, img.settings, modeImage); err != nil {
		return nil, err
	}
	for _, ru := range img.rules {
		if ru.set != nil {
			if _, err := d.decode(ru.src, tempPath(pbuf[:], ru.path, "set"), ru.set, modeRule); err != nil {
				return nil, err
			}
		}
	}
	return img, nil
}

// decodeVariants reads the [images.NAME.variants] table (nil when absent).
func (img *Image) decodeVariants(f *srcFile, path keyPath, v any) error {
	r := reader{f}
	var declared [numBuiltins][]string // nil: not declared
	var user []Dimension
	var ruleVals []any
	var ruleKeys []string
	if v != nil {
		tbl, err := r.table(path, v)
		if err != nil {
			return err
		}
		// Keys in document order, so user dimensions expand as written;
		// keys the scan did not see (none, as a rule) follow in key order.
		var order []string
		if ks := f.variantKeys[img.Name]; ks != nil {
			order = *ks
		}
		if !hasAllKeys(order, tbl) {
			order = slices.Clone(order)
			for _, k := range sortedKeys(tbl) {
				if !slices.Contains(order, k) {
					order = append(order, k)
				}
			}
		}
		var pbuf [8]string
		for _, k := range order {
			val, ok := tbl[k]
			if !ok {
				continue
			}
			kp := tempPath(pbuf[:], path, k)
			if k == "exclude" || k == "when" {
				ruleKeys = append(ruleKeys, k)
				ruleVals = append(ruleVals, val)
				continue
			}
			if b, i := builtinByVariantsKey(k); b != nil {
				vals, err := builtinValues(f, kp, b, val)
				if err != nil {
					return err
				}
				declared[i] = vals
				continue
			}
			if b, _ := builtinByName(k); b != nil {
				return f.errAt(ErrValue, kp, "use %s = [...] to list the %s values", b.VariantsKey, b.What)
			}
			if reservedDimNames[k] {
				return f.errAt(ErrValue, kp, "%q is reserved and cannot name a dimension", k)
			}
			vals, err := userValues(f, kp, val)
			if err != nil {
				return err
			}
			user = append(user, Dimension{Name: k, Values: vals, Declared: true, builtin: -1})
		}
	}
	img.Dimensions = make([]Dimension, 0, numBuiltins+len(user))
	for i := range builtinDims {
		b := &builtinDims[i]
		if vals := declared[i]; vals != nil {
			img.Dimensions = append(img.Dimensions, Dimension{Name: b.Name, Values: vals, Declared: true, builtin: i})
		} else if len(b.Defaults) > 0 {
			img.Dimensions = append(img.Dimensions, Dimension{Name: b.Name, Values: slices.Clone(b.Defaults), builtin: i})
		}
	}
	img.Dimensions = append(img.Dimensions, user...)
	var pbuf [8]string
	for i, k := range ruleKeys {
		rules, err := decodeRules(f, tempPath(pbuf[:], path, k), k == "exclude", ruleVals[i], img)
		if err != nil {
			return err
		}
		img.rules = append(img.rules, rules...)
	}
	return nil
}

// hasAllKeys reports whether every key of m is in keys (which has no
// duplicates).
func hasAllKeys(keys []string, m map[string]any) bool {
	n := 0
	for _, k := range keys {
		if _, ok := m[k]; ok {
			n++
		}
	}
	return n == len(m)
}

// dim returns the image's dimension called name, or nil.
func (img *Image) dim(name string) *Dimension {
	for i := range img.Dimensions {
		if img.Dimensions[i].Name == name {
			return &img.Dimensions[i]
		}
	}
	return nil
}

func builtinValues(f *srcFile, path keyPath, b *variant.Dim, v any) ([]string, error) {
	raw, err := reader{f}.strList(path, v)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, f.errAt(ErrValue, path, "empty list; expected at least one of: %s (or leave the key out)", b.Accepted())
	}
	out := make([]string, 0, len(raw))
	for i, s := range raw {
		c, ok := b.Normalize(s)
		if !ok {
			return nil, f.errAt(ErrUnknownValue, path.with(index(i)), "unknown %s %q; expected one of: %s", b.What, s, b.Accepted())
		}
		if slices.Contains(out, c) {
			return nil, f.errAt(ErrValue, path.with(index(i)), "%q repeats %s %s", s, b.What, c)
		}
		out = append(out, c)
	}
	return out, nil
}

func userValues(f *srcFile, path keyPath, v any) ([]string, error) {
	raw, err := reader{f}.strList(path, v)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, f.errAt(ErrValue, path, "empty list; expected at least one value")
	}
	for i, s := range raw {
		switch {
		case s == "" || s == unresolvedMark:
			return nil, f.errAt(ErrValue, path.with(index(i)), "found %q; expected a non-empty dimension value", s)
		case slices.Contains(raw[:i], s):
			return nil, f.errAt(ErrValue, path.with(index(i)), "value %q is listed twice", s)
		}
	}
	return raw, nil
}

// decodeRules reads `exclude = [...]` or `when = [...]` (also written as
// [[...exclude]] / [[...when]]). img is nil for tree-wide rules.
func decodeRules(f *srcFile, path keyPath, exclude bool, v any, img *Image) ([]*rule, error) {
	r := reader{f}
	tables, err := r.tableList(path, v)
	if err != nil {
		return nil, err
	}
	var out []*rule
	var pbuf, mbuf, kbuf [8]string
	for i, t := range tables {
		rp := path.with(index(i))
		ru := &rule{src: f, path: rp, exclude: exclude}
		match := t
		if !exclude {
			for _, k := range appendSortedKeys(kbuf[:0], t) {
				switch k {
				case "match", "set", "unset":
				default:
					return nil, f.errAt(ErrValue, rp.with(k), "unknown key %q in a when rule; expected match, set and unset", k)
				}
			}
			mv, ok := t["match"]
			if !ok {
				return nil, f.errAt(ErrValue, rp, "when rule without match; expected match = { DIMENSION = VALUE, ... }")
			}
			if match, err = r.table(tempPath(pbuf[:], rp, "match"), mv); err != nil {
				return nil, err
			}
			if sv, ok := t["set"]; ok {
				if ru.set, err = r.table(tempPath(pbuf[:], rp, "set"), sv); err != nil {
					return nil, err
				}
			}
			if uv, ok := t["unset"]; ok {
				keys, err := r.strList(tempPath(pbuf[:], rp, "unset"), uv)
				if err != nil {
					return nil, err
				}
				for j, k := range keys {
					parts := strings.Split(k, ".")
					if slices.Contains(parts, "") || !slices.Contains(settingsKeys, parts[0]) {
						return nil, f.errAt(ErrValue, rp.with("unset", index(j)), "cannot unset %q; expected a dotted key under %s", k, strings.Join(settingsKeys, ", "))
					}
					ru.unset = append(ru.unset, parts)
				}
			}
			if ru.set == nil && ru.unset == nil {
				return nil, f.errAt(ErrValue, rp, "when rule does nothing; expected set = {...} or unset = [...]")
			}
		}
		mp := rp
		if !exclude {
			mp = tempPath(mbuf[:], rp, "match")
		}
		if len(match) == 0 {
			return nil, f.errAt(ErrValue, mp, "empty rule; expected at least one DIMENSION = VALUE or [VALUES]")
		}
		for _, k := range appendSortedKeys(kbuf[:0], match) {
			c, err := decodeCond(f, tempPath(pbuf[:], mp, k), k, match[k], img)
			if err != nil {
				return nil, err
			}
			ru.conds = append(ru.conds, c)
		}
		out = append(out, ru)
	}
	return out, nil
}

func decodeCond(f *srcFile, path keyPath, dim string, v any, img *Image) (cond, error) {
	vals, err := reader{f}.strOrList(path, v)
	if err != nil {
		return cond{}, err
	}
	if len(vals) == 0 {
		return cond{}, f.errAt(ErrValue, path, "empty list; expected at least one value")
	}
	if slices.Contains(vals, unresolvedMark) {
		return cond{}, f.errAt(ErrValue, path, `"*" is not allowed in rules; list the values`)
	}
	if b, _ := builtinByName(dim); b != nil {
		for i, s := range vals {
			c, ok := b.Normalize(s)
			if !ok {
				return cond{}, f.errAt(ErrUnknownValue, path, "unknown %s %q; expected one of: %s", b.What, s, b.Accepted())
			}
			vals[i] = c
		}
		return cond{dim: dim, values: vals}, nil
	}
	if b, _ := builtinByVariantsKey(dim); b != nil {
		return cond{}, f.errAt(ErrValue, path, "rules name dimensions, not variants keys: use %s", b.Name)
	}
	if dim == "image" || img == nil {
		return cond{dim: dim, values: vals}, nil
	}
	d := img.dim(dim)
	if d == nil {
		var names []string
		for _, d := range img.Dimensions {
			names = append(names, d.Name)
		}
		return cond{}, f.errAt(ErrValue, path, "image %s has no dimension %q; its dimensions are: %s", img.Name, dim, strings.Join(names, ", "))
	}
	for _, s := range vals {
		if !slices.Contains(d.Values, s) {
			return cond{}, f.errAt(ErrUnknownValue, path, "%q is not a value of dimension %s; its values are: %s", s, dim, strings.Join(d.Values, ", "))
		}
	}
	return cond{dim: dim, values: vals}, nil
}
