package imagedef

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
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

// srcFile is one TOML file of the tree: its bytes plus what a fast syntax
// scan learned about it (includes, key positions, key order).
type srcFile struct {
	rel  string // slash-separated path relative to the tree root
	path string // path for messages (root directory joined with rel)
	data []byte

	includes    []string       // the top-level includes array
	hasSettings bool           // has a relevant top-level key besides includes
	offsets     map[string]int // key path (keyPath.String) -> byte offset of the key; built on first use
	indexOnce   sync.Once
	// variantKeys maps an image name to the keys of its [variants] table in
	// document order (user dimensions are expanded in that order).
	variantKeys map[string][]string
}

// keyPath is a TOML key path; array indexes are segments of the form "[N]".
type keyPath []string

func (p keyPath) String() string {
	var b strings.Builder
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

// locate returns the line and column of the key at path, or of its closest
// recorded ancestor; 0, 0 when nothing is known.
func (f *srcFile) locate(path keyPath) (line, col int) {
	if f == nil {
		return 0, 0
	}
	// Index the key positions on first use (Expand may run concurrently).
	f.indexOnce.Do(func() { _ = (&walker{f: f, index: true}).run() })
	for n := len(path); n > 0; n-- {
		if off, ok := f.offsets[path[:n].String()]; ok {
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

// scanFile checks the syntax of f.data with the streaming TOML parser and
// records the includes, whether the file has settings to decode, and the
// order of [variants] keys. It builds no values and no strings for keys, so
// large files of ignored keys (such as azldev's component lists) cost
// little. Key positions are indexed only when a message needs one.
func scanFile(f *srcFile) error {
	return (&walker{f: f}).run()
}

// walker walks the syntax tree of a file. In index mode it records the
// byte offset of every key path under a relevant top-level key; it must not
// build errors then (errAt indexes the file, under a sync.Once).
type walker struct {
	f     *srcFile
	index bool
	path  keyPath  // reused buffer
	keys  []string // reused by keyParts
	offs  []int
}

// parserPool recycles the parsers' node arenas across files.
var parserPool = sync.Pool{New: func() any { return new(unstable.Parser) }}

func (w *walker) run() error {
	f := w.f
	if w.index {
		f.offsets = map[string]int{}
	} else {
		f.includes, f.hasSettings, f.variantKeys = nil, false, nil
	}
	p := parserPool.Get().(*unstable.Parser)
	defer func() {
		p.Reset(nil)
		parserPool.Put(p)
	}()
	p.Reset(f.data)
	var header keyPath        // current table, with array-of-tables indexes in index mode
	relevant := true          // whether the current table is under a relevant top-level key
	var arrays map[string]int // index mode: array-of-tables path -> elements so far
	sawIncludes := false
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys, offs := w.keyParts(e)
			if len(keys) == 0 {
				continue
			}
			if keys[0] == "includes" && !w.index {
				return f.errAtOffset(offs[0], ErrType, keyPath{"includes"}, "expected an array of strings, found a table")
			}
			relevant = relevantTopKeys[keys[0]]
			header = header[:0]
			if !relevant {
				continue
			}
			f.hasSettings = true
			if !w.index {
				header = append(header, keys...)
				w.note(header, 0)
				continue
			}
			if arrays == nil {
				arrays = map[string]int{}
			}
			for i, k := range keys {
				header = append(header, k)
				last := i == len(keys)-1
				hs := header.String()
				n, isArray := arrays[hs]
				switch {
				case last && e.Kind == unstable.ArrayTable:
					arrays[hs] = n + 1
					w.note(header, offs[i])
					header = append(header, index(n))
				case isArray && n > 0:
					header = append(header, index(n-1))
				}
				w.note(header, offs[i])
			}
		case unstable.KeyValue:
			keys, offs := w.keyParts(e)
			if len(keys) == 0 {
				continue
			}
			if len(header) == 0 && relevant {
				// A root-level key, before any table header.
				if keys[0] == "includes" {
					// Checked in scan mode only: errAt would index the file,
					// which is what index mode is doing.
					if w.index {
						// nothing to check
					} else if len(keys) > 1 {
						return f.errAtOffset(offs[0], ErrType, keyPath{"includes"}, "expected an array of strings, found a table")
					} else if sawIncludes {
						// Let the decoder report the duplicate key.
						f.hasSettings = true
					} else {
						incs, err := includesValue(f, e.Value(), offs[0])
						if err != nil {
							return err
						}
						f.includes = incs
					}
					sawIncludes = true
				} else if relevantTopKeys[keys[0]] {
					f.hasSettings = true
				} else {
					continue
				}
			} else if !relevant {
				continue
			}
			w.path = append(w.path[:0], header...)
			for i, k := range keys {
				w.path = append(w.path, k)
				w.note(w.path, offs[i])
			}
			w.value(e.Value())
		}
	}
	if err := p.Error(); err != nil {
		var perr *unstable.ParserError
		off := len(f.data)
		if errors.As(err, &perr) {
			off = offsetIn(f.data, perr.Highlight)
		}
		line, col := position(f.data, off)
		return &ConfigError{File: f.path, Line: line, Col: col, Msg: err.Error(), Kind: ErrSyntax, Err: err}
	}
	return nil
}

// note records a key path: its offset in index mode, the order of the keys
// of images.NAME.variants in scan mode.
func (w *walker) note(path keyPath, off int) {
	if w.index {
		s := path.String()
		if _, ok := w.f.offsets[s]; !ok {
			w.f.offsets[s] = off
		}
		return
	}
	if len(path) == 4 && path[0] == "images" && path[2] == "variants" {
		if w.f.variantKeys == nil {
			w.f.variantKeys = map[string][]string{}
		}
		if ks := w.f.variantKeys[path[1]]; !slices.Contains(ks, path[3]) {
			w.f.variantKeys[path[1]] = append(ks, path[3])
		}
	}
}

// value records the keys inside inline tables and the elements of arrays
// under w.path (restored on return).
func (w *walker) value(v *unstable.Node) {
	if v == nil || (!w.index && len(w.path) >= 4) {
		return
	}
	base := len(w.path)
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			keys, offs := keyParts(kv)
			for i, k := range keys {
				w.path = append(w.path, k)
				w.note(w.path, offs[i])
			}
			w.value(kv.Value())
			w.path = w.path[:base]
		}
	case unstable.Array:
		if !w.index {
			return
		}
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := it.Node()
			w.path = append(w.path, index(i))
			if el.Raw.Length > 0 || el.Raw.Offset > 0 {
				w.note(w.path, int(el.Raw.Offset))
			}
			w.value(el)
			w.path = w.path[:base]
		}
	}
}

// errAtOffset builds a ConfigError at a byte offset of f (used while
// scanning, before key positions are indexed).
func (f *srcFile) errAtOffset(off int, kind error, path keyPath, format string, args ...any) *ConfigError {
	e := &ConfigError{File: f.path, Key: path.String(), Msg: fmt.Sprintf(format, args...), Kind: kind}
	e.Line, e.Col = position(f.data, off)
	return e
}

// keyParts returns the parts of a (dotted) key and their byte offsets.
func keyParts(n *unstable.Node) ([]string, []int) {
	return appendKeyParts(n, nil, nil)
}

// keyParts is keyParts for top-level expressions, reusing the walker's
// buffers (valid until the next call).
func (w *walker) keyParts(n *unstable.Node) ([]string, []int) {
	w.keys, w.offs = appendKeyParts(n, w.keys[:0], w.offs[:0])
	return w.keys, w.offs
}

func appendKeyParts(n *unstable.Node, keys []string, offs []int) ([]string, []int) {
	it := n.Key()
	for it.Next() {
		k := it.Node()
		keys = append(keys, string(k.Data))
		offs = append(offs, int(k.Raw.Offset))
	}
	return keys, offs
}

// includesValue reads `includes = ["glob", ...]` from the syntax tree.
func includesValue(f *srcFile, v *unstable.Node, keyOff int) ([]string, error) {
	if v.Kind != unstable.Array {
		return nil, f.errAtOffset(keyOff, ErrType, keyPath{"includes"}, "expected an array of strings, found %s", nodeKind(v))
	}
	var out []string
	it := v.Children()
	for i := 0; it.Next(); i++ {
		el := it.Node()
		if el.Kind != unstable.String {
			off := keyOff
			if el.Raw.Length > 0 {
				off = int(el.Raw.Offset)
			}
			return nil, f.errAtOffset(off, ErrType, keyPath{"includes", index(i)}, "expected a string, found %s", nodeKind(el))
		}
		out = append(out, string(el.Data))
	}
	return out, nil
}

func nodeKind(n *unstable.Node) string {
	switch n.Kind {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	default:
		return "a date/time"
	}
}

// offsetIn returns the offset of sub inside data, or len(data) when sub is
// not a slice of data.
func offsetIn(data, sub []byte) int {
	if sub == nil {
		return len(data)
	}
	off := cap(data) - cap(sub)
	if off < 0 || off > len(data) {
		return len(data)
	}
	return off
}

// decodeFile decodes the whole file into generic values. Only files with
// relevant settings are decoded (see scanFile).
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

// isScalar reports whether v needs no finiteness check (paths are only
// built for tables, arrays and floats).
func isScalar(v any) bool {
	switch v.(type) {
	case float64, []any, map[string]any:
		return false
	}
	return true
}
