// Design: typed reads of decoded TOML with located errors, and the merge rules of when overrides, as small pure
// functions over map[string]any.

package imagedef

import (
	"slices"
)

// This file holds the helpers that read typed values out of decoded TOML
// (map[string]any) and the merge rules of "when" overrides.

// unresolvedMark is the value that marks a setting filled in later by a
// publish step. It is never used as a literal.
const unresolvedMark = "*"

func isUnresolved(v any) bool {
	s, ok := v.(string)
	return ok && s == unresolvedMark
}

// sortedKeys returns the keys of m in lexical order.
func sortedKeys[V any](m map[string]V) []string {
	return appendSortedKeys(make([]string, 0, len(m)), m)
}

// appendSortedKeys appends the keys of m to dst in lexical order; with a
// dst on the caller's stack, small tables need no allocation.
func appendSortedKeys[V any](dst []string, m map[string]V) []string {
	n := len(dst)
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst[n:])
	return dst
}

// reader reads typed values from one file, producing located errors.
type reader struct {
	f *srcFile
}

func (r reader) table(path keyPath, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, r.f.errAt(ErrType, path, "expected a table, found %s", typeName(v))
	}
	return m, nil
}

func (r reader) str(path keyPath, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", r.f.errAt(ErrType, path, "expected a string, found %s", typeName(v))
	}
	return s, nil
}

func (r reader) boolean(path keyPath, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, r.f.errAt(ErrType, path, "expected a boolean (true or false), found %s", typeName(v))
	}
	return b, nil
}

// strList reads an array of strings.
func (r reader) strList(path keyPath, v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, r.f.errAt(ErrType, path, "expected an array of strings, found %s", typeName(v))
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, r.f.errAt(ErrType, path.with(index(i)), "expected a string, found %s", typeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// strOrList reads a string or an array of strings.
func (r reader) strOrList(path keyPath, v any) ([]string, error) {
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	if _, ok := v.([]any); !ok {
		return nil, r.f.errAt(ErrType, path, "expected a string or an array of strings, found %s", typeName(v))
	}
	return r.strList(path, v)
}

// tableList reads an array of tables (`[[x]]` or `x = [{...}]`).
func (r reader) tableList(path keyPath, v any) ([]map[string]any, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, r.f.errAt(ErrType, path, "expected an array of tables ([[%s]]), found %s", path.String(), typeName(v))
	}
	out := make([]map[string]any, 0, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, r.f.errAt(ErrType, path.with(index(i)), "expected a table, found %s", typeName(e))
		}
		out = append(out, m)
	}
	return out, nil
}

// deepCopy copies maps and arrays so that merges never touch shared data.
// If starNil is true, "*" values become nil (JSON null).
func deepCopy(v any, starNil bool) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e, starNil)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e, starNil)
		}
		return a
	case string:
		if starNil && x == unresolvedMark {
			return nil
		}
		return v // v, not x: boxing x again would allocate
	default:
		return v
	}
}

// mergeInto merges src into dst, which the caller owns: tables are merged
// key by key, arrays are appended, anything else is replaced.
func mergeInto(dst, src map[string]any) {
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok {
			dst[k] = deepCopy(sv, false)
			continue
		}
		switch s := sv.(type) {
		case map[string]any:
			if d, ok := dv.(map[string]any); ok {
				mergeInto(d, s)
				continue
			}
		case []any:
			if d, ok := dv.([]any); ok {
				merged := make([]any, 0, len(d)+len(s))
				merged = append(merged, d...)
				for _, e := range s {
					merged = append(merged, deepCopy(e, false))
				}
				dst[k] = merged
				continue
			}
		}
		dst[k] = deepCopy(sv, false)
	}
}

// deletePath removes the key at path from m; missing keys are ignored.
func deletePath(m map[string]any, path []string) {
	for i, k := range path {
		if i == len(path)-1 {
			delete(m, k)
			return
		}
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
}

// collectUnresolved appends the paths of all "*" values in the table m.
// Paths are built only for the values found. With take, m belongs to the
// caller, and its "*" values become nil in the same walk.
func collectUnresolved(path keyPath, m map[string]any, out *[]string, take bool) {
	var buf [8]string
	walkUnresolved(tempPath(buf[:], path), m, out, take)
}

// walkUnresolved is collectUnresolved below path (a buffer that callers
// further down overwrite).
func walkUnresolved(path keyPath, v any, out *[]string, take bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if isUnresolved(e) {
				*out = append(*out, append(path, k).String())
				if take {
					x[k] = nil
				}
			} else if isContainer(e) {
				walkUnresolved(append(path, k), e, out, take)
			}
		}
	case []any:
		for i, e := range x {
			if isUnresolved(e) {
				*out = append(*out, append(path, index(i)).String())
				if take {
					x[i] = nil
				}
			} else if isContainer(e) {
				walkUnresolved(append(path, index(i)), e, out, take)
			}
		}
	}
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}
