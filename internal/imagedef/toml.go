// Design: each file is decoded once, by toml.Unmarshal into a map; key positions (for messages, and for the
// written order of dimensions) come from go-toml's own parser, walked only for files that need one.

package imagedef

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Top-level keys this package reads. Every other top-level key (azldev's
// project settings, components, packages, tools, ...) is accepted and ignored.
var relevantTopKeys = map[string]bool{
	"includes":  true,
	"images":    true,
	"distros":   true,
	"resources": true,
	"project":   true,
	"variants":  true,
}

// srcFile is one TOML file of the tree: its bytes and, once a message or
// the order of keys needs them, the byte offsets of its keys.
type srcFile struct {
	rel  string // slash-separated path relative to the tree root
	path string // path for messages (root directory joined with rel)
	data []byte

	offsets   map[string]int // key path (keyPath.String) -> byte offset of the key; built on first use
	indexOnce sync.Once
}

// keyPath is a TOML key path; array indexes are segments of the form "[N]".
type keyPath []string

func (p keyPath) String() string {
	if len(p) == 1 && isBareKey(p[0]) {
		return p[0]
	}
	n := 0
	for _, s := range p {
		n += len(s) + 1
	}
	var b strings.Builder
	b.Grow(n) // exact unless a segment needs quotes
	for i, s := range p {
		if strings.HasPrefix(s, "[") {
			b.WriteString(s)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if isBareKey(s) {
			b.WriteString(s)
		} else {
			b.WriteString(strconv.Quote(s))
		}
	}
	return b.String()
}

// with returns a new path with more segments; p is never modified.
func (p keyPath) with(segs ...string) keyPath {
	q := make(keyPath, 0, len(p)+len(segs))
	return append(append(q, p...), segs...)
}

// tempPath returns base followed by segs, in buf (an array of the caller,
// so that short paths need no allocation). It is for paths that only serve
// messages while a value is checked and are not kept; keyPath.with makes a
// path to keep.
func tempPath(buf []string, base keyPath, segs ...string) keyPath {
	return append(append(buf[:0], base...), segs...)
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int) (line, col int) {
	if off < 0 {
		return 0, 0
	}
	if off > len(data) {
		off = len(data)
	}
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// offset returns the byte offset of the key at path, or -1. The first
// call indexes the file with go-toml's parser (Expand may call it
// concurrently).
func (f *srcFile) offset(path keyPath) int {
	f.indexOnce.Do(func() { indexKeys(f) })
	if off, ok := f.offsets[path.String()]; ok {
		return off
	}
	return -1
}

// locate returns the line and column of the key at path, or of its closest
// recorded ancestor; 0, 0 when nothing is known.
func (f *srcFile) locate(path keyPath) (line, col int) {
	if f == nil {
		return 0, 0
	}
	for n := len(path); n > 0; n-- {
		if off := f.offset(path[:n]); off >= 0 {
			return position(f.data, off)
		}
	}
	return 0, 0
}

// errAt builds a ConfigError located at path in f.
func (f *srcFile) errAt(kind error, path keyPath, format string, args ...any) *ConfigError {
	e := &ConfigError{Key: path.String(), Msg: fmt.Sprintf(format, args...), Kind: kind}
	if f != nil {
		e.File = f.path
		e.Line, e.Col = f.locate(path)
	}
	return e
}

// warnAt builds a Warning located at path in f.
func (f *srcFile) warnAt(path keyPath, format string, args ...any) Warning {
	e := f.errAt(nil, path, format, args...)
	return Warning{File: e.File, Line: e.Line, Col: e.Col, Key: e.Key, Msg: e.Msg}
}

// indexKeys records the byte offset of every key path under a relevant
// top-level key, with array-of-tables indexes ("resources.t[0].images[1]"),
// from go-toml's syntax tree. It must not build errors (errAt calls it under
// a sync.Once).
func indexKeys(f *srcFile) {
	f.offsets = map[string]int{}
	w := &walker{f: f}
	var p unstable.Parser
	p.Reset(f.data)
	var header keyPath         // current table, with array-of-tables indexes
	relevant := true           // whether the current table is under a relevant top-level key
	arrays := map[string]int{} // array-of-tables path -> elements so far
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.ArrayTable && e.Kind != unstable.KeyValue {
			continue
		}
		keys, offs := keyParts(e)
		if len(keys) == 0 {
			continue
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			relevant = relevantTopKeys[keys[0]]
			header = header[:0]
			if !relevant {
				continue
			}
			for i, k := range keys {
				header = append(header, k)
				hs := header.String()
				n, isArray := arrays[hs]
				switch {
				case i == len(keys)-1 && e.Kind == unstable.ArrayTable:
					arrays[hs] = n + 1
					w.note(header, offs[i])
					header = append(header, index(n))
				case isArray && n > 0:
					header = append(header, index(n-1))
				}
				w.note(header, offs[i])
			}
		case unstable.KeyValue:
			if !relevant || len(header) == 0 && !relevantTopKeys[keys[0]] {
				continue // an ignored table, or an ignored root-level key
			}
			w.path = append(w.path[:0], header...)
			for i, k := range keys {
				w.path = append(w.path, k)
				w.note(w.path, offs[i])
			}
			w.value(e.Value())
		}
	}
}

// walker is the state of indexKeys below a key-value.
type walker struct {
	f    *srcFile
	path keyPath // reused buffer
}

// note records the offset of a key path.
func (w *walker) note(path keyPath, off int) {
	s := path.String()
	if _, ok := w.f.offsets[s]; !ok {
		w.f.offsets[s] = off
	}
}

// value records the keys inside inline tables and the elements of arrays
// under w.path (restored on return).
func (w *walker) value(v *unstable.Node) {
	base := len(w.path)
	switch v.Kind {
	case unstable.InlineTable:
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			keys, offs := keyParts(kv)
			for i, k := range keys {
				w.path = append(w.path, k)
				w.note(w.path, offs[i])
			}
			w.value(kv.Value())
			w.path = w.path[:base]
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := it.Node()
			w.path = append(w.path, index(i))
			if el.Raw.Length > 0 || el.Raw.Offset > 0 { // tables and arrays have no range of their own
				w.note(w.path, int(el.Raw.Offset))
			}
			w.value(el)
			w.path = w.path[:base]
		}
	}
}

// keyParts returns the parts of a (dotted) key and their byte offsets.
func keyParts(n *unstable.Node) (keys []string, offs []int) {
	for it := n.Key(); it.Next(); {
		k := it.Node()
		keys = append(keys, string(k.Data))
		offs = append(offs, int(k.Raw.Offset))
	}
	return keys, offs
}

// decodeFile decodes the whole file into generic values.
func decodeFile(f *srcFile) (map[string]any, error) {
	var m map[string]any
	if err := toml.Unmarshal(f.data, &m); err != nil {
		ce := &ConfigError{File: f.path, Msg: strings.TrimPrefix(err.Error(), "toml: "), Kind: ErrSyntax, Err: err}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			ce.Line, ce.Col = de.Position()
			if k := de.Key(); len(k) > 0 {
				ce.Key = keyPath(k).String()
			}
		}
		return nil, ce
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// typeName names the TOML type of a decoded value, with an article.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a date/time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// checkFinite rejects NaN and infinite floats, which JSON cannot carry.
func checkFinite(f *srcFile, path keyPath, v any) error {
	if allFinite(v) {
		return nil // the common cases, without building paths
	}
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return f.errAt(ErrValue, path, "found %v; expected a finite number (the value ends up in JSON)", x)
		}
	case []any:
		for i, e := range x {
			if !isScalar(e) {
				if err := checkFinite(f, path.with(index(i)), e); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) { // sorted: the first error is stable
			if e := x[k]; !isScalar(e) {
				if err := checkFinite(f, path.with(k), e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// allFinite reports whether v holds no NaN or infinite float.
func allFinite(v any) bool {
	switch x := v.(type) {
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case []any:
		for _, e := range x {
			if !allFinite(e) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !allFinite(e) {
				return false
			}
		}
	}
	return true
}

// isScalar reports whether v needs no finiteness check (paths are only
// built for tables, arrays and floats).
func isScalar(v any) bool {
	switch v.(type) {
	case float64, []any, map[string]any:
		return false
	}
	return true
}
