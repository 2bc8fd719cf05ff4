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
	noFloats    bool           // its values were built by docBuilder, which builds no floats
	offsets     map[string]int // key path (keyPath.String) -> byte offset of the key; built on first use
	indexOnce   sync.Once
	// variantKeys maps an image name to the keys of its [variants] table in
	// document order (user dimensions are expanded in that order), until
	// the file's images are decoded.
	variantKeys map[string]*[]string
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

// locate returns the line and column of the key at path, or of its closest
// recorded ancestor; 0, 0 when nothing is known.
func (f *srcFile) locate(path keyPath) (line, col int) {
	if f == nil {
		return 0, 0
	}
	// Index the key positions on first use (Expand may run concurrently).
	f.indexOnce.Do(func() { _ = (&walker{f: f}).run() })
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
// order of [variants] keys. It builds no strings for the keys of ignored
// tables, so large files of ignored keys (such as azldev's component lists)
// cost little. Key positions are indexed only when a message needs one.
//
// It also returns the values of the file's settings, built from the same
// syntax tree (see docBuilder), or nil when the file has ignored top-level
// keys as well or the builder gave up: parseFile then decodes the file
// with toml.Unmarshal.
func scanFile(f *srcFile) (map[string]any, error) {
	f.includes, f.hasSettings, f.variantKeys = nil, false, nil
	s := scannerPool.Get().(*scanner)
	s.f = f
	s.b.init()
	p := parserPool.Get().(*unstable.Parser)
	defer func() {
		p.Reset(nil)
		parserPool.Put(p)
		s.f = nil
		s.b.reset()
		scannerPool.Put(s)
	}()
	p.Reset(f.data)
	relevant := true    // whether the current table is under a relevant top-level key
	var header notePath // the current table, if it is relevant
	sawIncludes := false
	var keyBuf [8][]byte
	var offBuf [8]int
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys, offs := keyParts(e, keyBuf[:0], offBuf[:0])
			if len(keys) == 0 {
				continue
			}
			if string(keys[0]) == "includes" {
				return nil, f.errAtOffset(offs[0], ErrType, keyPath{"includes"}, "expected an array of strings, found a table")
			}
			relevant = relevantTopKeys[string(keys[0])]
			header = notePath{}
			if !relevant {
				s.b.giveUp() // values of ignored keys are not built
				continue
			}
			f.hasSettings = true
			for _, k := range keys {
				header.push(k)
			}
			if header.n == 4 {
				s.note(&header)
			}
			s.b.table(keys, e.Kind == unstable.ArrayTable)
		case unstable.KeyValue:
			keys, offs := keyParts(e, keyBuf[:0], offBuf[:0])
			if len(keys) == 0 {
				continue
			}
			if header.n == 0 && relevant {
				// A root-level key, before any table header.
				if string(keys[0]) == "includes" {
					if len(keys) > 1 {
						return nil, f.errAtOffset(offs[0], ErrType, keyPath{"includes"}, "expected an array of strings, found a table")
					} else if sawIncludes {
						// Let the decoder report the duplicate key.
						f.hasSettings = true
					} else {
						incs, err := includesValue(f, e.Value(), offs[0])
						if err != nil {
							return nil, err
						}
						f.includes = incs
					}
					sawIncludes = true
				} else if relevantTopKeys[string(keys[0])] {
					f.hasSettings = true
				} else {
					s.b.giveUp()
					continue
				}
			} else if !relevant {
				continue
			}
			path := header
			for _, k := range keys {
				s.push(&path, k)
			}
			s.value(path, e.Value())
			s.b.keyValue(keys, e.Value())
		}
	}
	if err := p.Error(); err != nil {
		var perr *unstable.ParserError
		off := len(f.data)
		if errors.As(err, &perr) {
			off = offsetIn(f.data, perr.Highlight)
		}
		line, col := position(f.data, off)
		return nil, &ConfigError{File: f.path, Line: line, Col: col, Msg: err.Error(), Kind: ErrSyntax, Err: err}
	}
	return s.b.result(), nil
}

// scanner is the state of scanFile. Keys are the parser's bytes (slices of
// the file or of unescaped copies), turned into strings only when kept.
type scanner struct {
	f *srcFile
	b docBuilder
}

// scannerPool recycles the scanners' buffers across files.
var scannerPool = sync.Pool{New: func() any { return new(scanner) }}

// keyParts appends the parts of a (dotted) key of a top-level expression and
// their byte offsets to keys and offs.
func keyParts(n *unstable.Node, keys [][]byte, offs []int) ([][]byte, []int) {
	for it := n.Key(); it.Next(); {
		k := it.Node()
		keys = append(keys, k.Data)
		offs = append(offs, int(k.Raw.Offset))
	}
	return keys, offs
}

// notePath is a key path as far as note looks at it: its first four parts
// (and its length).
type notePath struct {
	parts [4][]byte
	n     int
}

func (p *notePath) push(k []byte) {
	if p.n < len(p.parts) {
		p.parts[p.n] = k
	}
	p.n++
}

// push adds k to path and notes the result.
func (s *scanner) push(path *notePath, k []byte) {
	path.push(k)
	if path.n == 4 {
		s.note(path)
	}
}

// note records the order of the keys of images.NAME.variants, from a path
// of four parts.
func (s *scanner) note(path *notePath) {
	p := &path.parts
	if string(p[0]) != "images" || string(p[2]) != "variants" {
		return
	}
	f := s.f
	if f.variantKeys == nil {
		f.variantKeys = map[string]*[]string{}
	}
	ks := f.variantKeys[string(p[1])]
	if ks == nil {
		ks = &[]string{}
		f.variantKeys[string(p[1])] = ks
	}
	if !slices.ContainsFunc(*ks, func(k string) bool { return k == string(p[3]) }) {
		*ks = append(*ks, internKey(p[3]))
	}
}

// value notes the keys inside inline tables under path, down to the depth
// note looks at.
func (s *scanner) value(path notePath, v *unstable.Node) {
	if v == nil || path.n >= 4 || v.Kind != unstable.InlineTable {
		return
	}
	it := v.Children()
	for it.Next() {
		kv := it.Node()
		if kv.Kind != unstable.KeyValue {
			continue
		}
		p := path
		for k := kv.Key(); k.Next(); {
			s.push(&p, k.Node().Data)
		}
		s.value(p, kv.Value())
	}
}

// walker indexes the byte offset of every key path under a relevant
// top-level key, for messages. It must not build errors (errAt indexes the
// file, under a sync.Once).
type walker struct {
	f    *srcFile
	path keyPath  // reused buffer
	keys []string // reused by keyParts
	offs []int
}

// parserPool recycles the parsers' node arenas across files.
var parserPool = sync.Pool{New: func() any { return new(unstable.Parser) }}

func (w *walker) run() error {
	f := w.f
	f.offsets = map[string]int{}
	p := parserPool.Get().(*unstable.Parser)
	defer func() {
		p.Reset(nil)
		parserPool.Put(p)
	}()
	p.Reset(f.data)
	var header keyPath        // current table, with array-of-tables indexes
	relevant := true          // whether the current table is under a relevant top-level key
	var arrays map[string]int // array-of-tables path -> elements so far
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys, offs := w.keyParts(e)
			if len(keys) == 0 {
				continue
			}
			relevant = relevantTopKeys[keys[0]]
			header = header[:0]
			if !relevant {
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
				if keys[0] != "includes" && !relevantTopKeys[keys[0]] {
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
	return nil
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
	if v == nil {
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
			keys, offs := stringKeyParts(kv)
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

// stringKeyParts returns the parts of a (dotted) key and their byte
// offsets.
func stringKeyParts(n *unstable.Node) ([]string, []int) {
	return appendKeyParts(n, nil, nil)
}

// keyParts is stringKeyParts for top-level expressions, reusing the walker's
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
	if f.noFloats || allFinite(v) {
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
