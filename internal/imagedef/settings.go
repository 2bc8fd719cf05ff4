// Design: an image's settings are checked once at load time against a small schema (located errors, warnings
// for unknown keys); Expand decodes again only the top-level keys a when rule touches.

package imagedef

import (
	"path/filepath"
	"slices"
	"strings"
)

// settings are the decoded per-variant settings of an image: everything in
// [images.NAME] except distro and variants, after "when" overrides.
type settings struct {
	description  string
	defGiven     bool // a definition table was given (an image without one is built elsewhere)
	defType      string
	defPath      string // absolute
	profiles     []string
	capabilities map[string]bool
	labels       []string
	channels     []string
	// delivery is the delivery table. When deliveryOwned, it was built by
	// one Expand call and its "*" values are nil already; otherwise it is
	// the Tree's table, which Expand copies with "*" values as nil.
	delivery   map[string]any
	unresolved []string // paths relative to the image table, sorted
	// deliveryOwned is true when delivery was built by one Expand call
	// (so its variants may share it without a copy).
	deliveryOwned bool
}

// definitionTypes lists the accepted definition.type values; the first is
// the default.
var definitionTypes = []string{"kiwi"}

// settingsKeys are the keys a "when" rule may set.
var settingsKeys = []string{"capabilities", "definition", "delivery", "description", "publish"}

// deliverySchema describes the known delivery sub-tables (Azure Linux PR
// 16184): field -> "string", "bool", or a nested schema. Unknown sub-tables
// are kept as they are; unknown fields of known sub-tables draw a warning.
var deliverySchema = map[string]map[string]any{
	"marketplace": {"publisher": "string", "offer": "string", "sku_prefix": "string", "version": "string"},
	"vhd":         {"vhd_path": "string"},
	"shared_gallery": {
		"subscription_id": "string", "resource_group_name": "string", "image_gallery": "string",
		"image_definition": "string", "image_version": "string",
		"capability": map[string]any{
			"accelerated_networking": "bool", "hibernation_support": "bool",
			"high_perf_nvme": "bool", "security_type": "string",
		},
	},
	"community_gallery": {"image_gallery": "string", "image_definition": "string", "image_version": "string"},
}

// settingsMode says where settings come from.
type settingsMode int

const (
	modeImage  settingsMode = iota // an [images.NAME] table at load time
	modeRule                       // the `set` table of a when rule at load time
	modeExpand                     // merged settings of one variant (already checked)
)

// defRef is a definition path to check for existence after loading.
type defRef struct {
	abs  string
	f    *srcFile
	path keyPath
}

// settingsDecoder decodes settings tables; at load time it also collects
// warnings and the definition paths to check, and resolves those paths
// against the declaring file (rewriting them in m to absolute paths, so
// that merges carry the right path).
type settingsDecoder struct {
	warnings *[]Warning
	defs     *[]defRef
}

func (d settingsDecoder) decode(f *srcFile, base keyPath, m map[string]any, mode settingsMode) (*settings, error) {
	s := &settings{}
	var pbuf, kbuf [8]string
	for _, k := range appendSortedKeys(kbuf[:0], m) {
		if err := d.decodeKey(f, tempPath(pbuf[:], base, k), k, m[k], s, mode); err != nil {
			return nil, err
		}
	}
	slices.Sort(s.unresolved)
	return s, nil
}

// decodeKey decodes one top-level key k of an image table, at path p (which
// ends with k, and is not kept), into s.
func (d settingsDecoder) decodeKey(f *srcFile, p keyPath, k string, v any, s *settings, mode settingsMode) error {
	r := reader{f}
	if mode != modeExpand {
		if err := checkFinite(f, p, v); err != nil {
			return err
		}
	}
	if isUnresolved(v) {
		s.unresolved = append(s.unresolved, k)
		s.defGiven = s.defGiven || k == "definition"
		return nil
	}
	var err error
	switch k {
	case "description":
		s.description, err = r.str(p, v)
	case "definition":
		err = d.definition(f, p, v, s, mode)
	case "capabilities":
		err = d.capabilities(f, p, v, s)
	case "publish":
		err = d.publish(f, p, v, s, mode)
	case "delivery":
		err = d.delivery(f, p, v, s, mode)
	case "tests":
		// azldev test suites: accepted and ignored.
		if mode == modeRule {
			err = f.errAt(ErrValue, p, "a when rule cannot set %q; it can set %s", k, strings.Join(settingsKeys, ", "))
		}
	default:
		switch mode {
		case modeRule:
			err = f.errAt(ErrValue, p, "a when rule cannot set %q; it can set %s", k, strings.Join(settingsKeys, ", "))
		case modeImage:
			d.warn(f.warnAt(p, "unknown image key %q ignored; known keys: description, distro, definition, capabilities, publish, delivery, variants, tests", k))
		}
	}
	return err
}

// withoutKeys returns a copy of s with everything decoded from the
// top-level keys cleared, ready for decodeKey to decode new values of them.
func (s *settings) withoutKeys(keys []string) *settings {
	c := *s
	for _, k := range keys {
		switch k {
		case "description":
			c.description = ""
		case "definition":
			c.defGiven, c.defType, c.defPath, c.profiles = false, "", "", nil
		case "capabilities":
			c.capabilities = nil
		case "publish":
			c.labels, c.channels = nil, nil
		case "delivery":
			c.delivery, c.deliveryOwned = nil, false
		}
	}
	c.unresolved = make([]string, 0, len(s.unresolved))
	for _, u := range s.unresolved {
		if !slices.ContainsFunc(keys, func(k string) bool { return isUnder(u, k) }) {
			c.unresolved = append(c.unresolved, u)
		}
	}
	return &c
}

// isUnder reports whether the unresolved path u is k or lies under it.
func isUnder(u, k string) bool {
	rest, ok := strings.CutPrefix(u, k)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}

func (d settingsDecoder) warn(w Warning) {
	if d.warnings != nil {
		*d.warnings = append(*d.warnings, w)
	}
}

// definitionKeys are the keys of definition, in the order they are read.
var definitionKeys = []string{"path", "profile", "type"}

func (d settingsDecoder) definition(f *srcFile, p keyPath, v any, s *settings, mode settingsMode) error {
	r := reader{f}
	def, err := r.table(p, v)
	if err != nil {
		return err
	}
	s.defGiven = true
	for _, k := range definitionKeys {
		v, ok := def[k]
		if !ok {
			continue
		}
		if isUnresolved(v) {
			s.unresolved = append(s.unresolved, "definition."+k)
			continue
		}
		switch k {
		case "type":
			t, ok := v.(string)
			if !ok {
				return errType(f, p.with(k), "a string", v)
			}
			if !slices.Contains(definitionTypes, t) {
				return f.errAt(ErrUnknownValue, p.with(k), "unknown definition type %q; expected one of: %s", t, strings.Join(definitionTypes, ", "))
			}
			s.defType = t
		case "path":
			ps, ok := v.(string)
			if !ok {
				return errType(f, p.with(k), "a string", v)
			}
			if ps == "" {
				return f.errAt(ErrValue, p.with(k), "empty definition path; expected the path of the KIWI file, relative to %s", filepath.Base(f.path))
			}
			if mode != modeExpand && !filepath.IsAbs(ps) {
				ps = filepath.Join(filepath.Dir(f.path), filepath.FromSlash(ps))
				def[k] = ps
			}
			if mode != modeExpand && d.defs != nil {
				*d.defs = append(*d.defs, defRef{abs: ps, f: f, path: p.with(k)})
			}
			s.defPath = ps
		case "profile":
			if prof, ok := v.(string); ok {
				s.profiles = []string{prof}
				continue
			}
			prof, err := r.strOrList(p.with(k), v)
			if err != nil {
				return err
			}
			s.profiles = prof
		}
	}
	known := 0
	for _, k := range definitionKeys {
		if _, ok := def[k]; ok {
			known++
		}
	}
	if mode == modeExpand || known == len(def) {
		return nil
	}
	for _, k := range sortedKeys(def) {
		if slices.Contains(definitionKeys, k) {
			continue
		}
		if mode == modeRule {
			return f.errAt(ErrValue, p.with(k), "unknown definition key %q; expected type, path or profile", k)
		}
		d.warn(f.warnAt(p.with(k), "unknown definition key %q ignored; expected type, path or profile", k))
	}
	return nil
}

// errType is the error for a value of the wrong type.
func errType(f *srcFile, p keyPath, want string, v any) error {
	return f.errAt(ErrType, p, "expected %s, found %s", want, typeName(v))
}

func (d settingsDecoder) capabilities(f *srcFile, p keyPath, v any, s *settings) error {
	caps, err := reader{f}.table(p, v)
	if err != nil {
		return err
	}
	s.capabilities = make(map[string]bool, len(caps))
	var bad []string
	for k, v := range caps {
		switch b := v.(type) {
		case bool:
			s.capabilities[k] = b
		default:
			if isUnresolved(v) {
				s.unresolved = append(s.unresolved, "capabilities."+keyPath{k}.String())
			} else {
				bad = append(bad, k)
			}
		}
	}
	if len(bad) > 0 {
		k := slices.Min(bad) // report the first in key order
		return f.errAt(ErrType, p.with(k), "expected a boolean (true or false), found %s", typeName(caps[k]))
	}
	return nil
}

func (d settingsDecoder) publish(f *srcFile, p keyPath, v any, s *settings, mode settingsMode) error {
	r := reader{f}
	pub, err := r.table(p, v)
	if err != nil {
		return err
	}
	var pbuf, kbuf [8]string
	for _, k := range appendSortedKeys(kbuf[:0], pub) {
		kp := tempPath(pbuf[:], p, k)
		switch k {
		case "labels", "channels":
			list, err := r.strList(kp, pub[k])
			if err != nil {
				return err
			}
			kept := make([]string, 0, len(list))
			for i, l := range list {
				if l == unresolvedMark {
					s.unresolved = append(s.unresolved, "publish."+k+index(i))
					continue
				}
				kept = append(kept, l)
			}
			if k == "labels" {
				s.labels = kept
			} else {
				s.channels = kept
			}
		default:
			if mode == modeRule {
				return f.errAt(ErrValue, kp, "unknown publish key %q; expected labels or channels", k)
			}
			if mode == modeImage {
				d.warn(f.warnAt(kp, "unknown publish key %q ignored; expected labels or channels", k))
			}
		}
	}
	return nil
}

func (d settingsDecoder) delivery(f *srcFile, p keyPath, v any, s *settings, mode settingsMode) error {
	r := reader{f}
	del, err := r.table(p, v)
	if err != nil {
		return err
	}
	if mode != modeExpand && !deliveryOK(del) {
		// Something is off: walk again in key order to report it.
		for _, k := range sortedKeys(del) {
			if isUnresolved(del[k]) {
				continue
			}
			sub, err := r.table(p.with(k), del[k])
			if err != nil {
				return err
			}
			if schema, ok := deliverySchema[k]; ok {
				if err := d.checkSchema(f, p.with(k), sub, schema); err != nil {
					return err
				}
			}
		}
	}
	if mode == modeRule {
		return nil // rules are only checked here; Expand merges them
	}
	// In modeExpand the merged table belongs to this Expand call: its "*"
	// values become nil in place. Otherwise it is the image's own table,
	// shared with the Tree: Expand copies it (with "*" as nil) for its
	// variants.
	s.deliveryOwned = mode == modeExpand
	collectUnresolved(keyPath{"delivery"}, del, &s.unresolved, s.deliveryOwned)
	s.delivery = del
	return nil
}

// deliveryOK reports, without allocating, whether every delivery sub-table
// is a table that fits its schema (if it has one) with no unknown keys.
func deliveryOK(del map[string]any) bool {
	for k, v := range del {
		if isUnresolved(v) {
			continue
		}
		sub, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if schema, ok := deliverySchema[k]; ok && !schemaOK(sub, schema) {
			return false
		}
	}
	return true
}

func schemaOK(m, schema map[string]any) bool {
	for k, v := range m {
		want, ok := schema[k]
		if !ok {
			return false
		}
		if isUnresolved(v) {
			continue
		}
		switch w := want.(type) {
		case string:
			if w == "bool" {
				if _, ok := v.(bool); !ok {
					return false
				}
			} else if _, ok := v.(string); !ok {
				return false
			}
		case map[string]any:
			sub, ok := v.(map[string]any)
			if !ok || !schemaOK(sub, w) {
				return false
			}
		}
	}
	return true
}

func (d settingsDecoder) checkSchema(f *srcFile, p keyPath, m map[string]any, schema map[string]any) error {
	r := reader{f}
	for _, k := range sortedKeys(m) {
		v := m[k]
		kp := p.with(k)
		want, known := schema[k]
		if !known {
			d.warn(f.warnAt(kp, "unknown key %q kept; known keys: %s", k, strings.Join(sortedKeys(schema), ", ")))
			continue
		}
		if isUnresolved(v) {
			continue
		}
		switch w := want.(type) {
		case string:
			var err error
			if w == "bool" {
				_, err = r.boolean(kp, v)
			} else {
				_, err = r.str(kp, v)
			}
			if err != nil {
				return err
			}
		case map[string]any:
			sub, err := r.table(kp, v)
			if err != nil {
				return err
			}
			if err := d.checkSchema(f, kp, sub, w); err != nil {
				return err
			}
		}
	}
	return nil
}
