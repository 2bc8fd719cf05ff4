package imagedef

import (
	"bytes"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// docBuilder builds the values of a TOML document from the syntax tree that
// scanFile walks anyway, so that a file is parsed once instead of twice (a
// second time by toml.Unmarshal). The result is what toml.Unmarshal gives
// for a map[string]any: tables are map[string]any, arrays []any, strings
// string, integers int64, booleans bool.
//
// It follows the rules go-toml applies to keys and tables (a key is defined
// once, a table header appears once, dotted keys and inline tables cannot
// be extended by headers, ...), but it never reports a problem itself: on
// anything it does not accept, and on values it does not convert (floats,
// dates and times, integers other than plain decimals), it gives up, and the
// file is decoded by toml.Unmarshal, which reports the errors. Documents it
// accepts decode to the same values either way (FuzzDocBuilder checks this).
type docBuilder struct {
	root    map[string]any
	entries []docEntry // entries[0] is the root table
	cur     int32      // entry of the table key-values go to
	failed  bool
}

type docKind uint8

const (
	docTable      docKind = iota // a table, from a header or an intermediate part of one
	docDottedKey                 // a table made by a dotted key
	docValue                     // a key-value (scalar, array or inline table)
	docArrayTable                // an array of tables
	docAnonymous                 // an inline table or array inside an array (never looked up)
)

// docEntry is one key seen in the document. Entries are found by parent and
// name, in the parent's list of children.
type docEntry struct {
	kind     docKind
	explicit bool // a table defined by its own header
	name     []byte
	// m is the map of a table, of a dotted-key table, of an inline table, or
	// of the current (last) element of an array of tables.
	m           map[string]any
	child, next int32 // first child and next sibling; 0 for none (entry 0 is the root)
}

func (b *docBuilder) init() {
	b.root = map[string]any{}
	b.entries = append(b.entries[:0], docEntry{kind: docTable, m: b.root})
	b.cur = 0
	b.failed = false
}

// reset drops the builder's references to a document, keeping its buffer.
func (b *docBuilder) reset() {
	clear(b.entries[:cap(b.entries)])
	b.entries = b.entries[:0]
	b.root = nil
}

// giveUp makes the builder stop: the file will be decoded by toml.Unmarshal.
func (b *docBuilder) giveUp() { b.failed = true }

// result returns the document's values, or nil if the builder gave up.
func (b *docBuilder) result() map[string]any {
	if b.failed {
		return nil
	}
	return b.root
}

// find returns the child of parent called name, or -1.
func (b *docBuilder) find(parent int32, name []byte) int32 {
	for i := b.entries[parent].child; i != 0; i = b.entries[i].next {
		if bytes.Equal(b.entries[i].name, name) {
			return i
		}
	}
	return -1
}

// add adds an entry. Anonymous entries have no name and are not linked to
// their parent: they are never looked up.
func (b *docBuilder) add(parent int32, name []byte, kind docKind, m map[string]any) int32 {
	id := int32(len(b.entries))
	e := docEntry{kind: kind, name: name, m: m}
	if kind != docAnonymous {
		e.next = b.entries[parent].child
		b.entries[parent].child = id
	}
	b.entries = append(b.entries, e)
	return id
}

// subTable creates a table called name in the table of entry parent.
func (b *docBuilder) subTable(parent int32, name []byte, kind docKind) int32 {
	m := map[string]any{}
	b.entries[parent].m[internKey(name)] = m
	return b.add(parent, name, kind, m)
}

// header walks the intermediate parts of a table header, creating the
// tables that do not exist, and returns the entry of the last part's parent.
func (b *docBuilder) header(keys [][]byte) (int32, bool) {
	parent := int32(0)
	for _, name := range keys[:len(keys)-1] {
		i := b.find(parent, name)
		if i < 0 {
			i = b.subTable(parent, name, docTable)
		} else if k := b.entries[i].kind; k != docTable && k != docArrayTable && k != docDottedKey {
			return 0, false
		}
		parent = i
	}
	return parent, true
}

// table handles a [table] or [[array table]] header.
func (b *docBuilder) table(keys [][]byte, array bool) {
	if b.failed {
		return
	}
	parent, ok := b.header(keys)
	if !ok {
		b.giveUp()
		return
	}
	name := keys[len(keys)-1]
	i := b.find(parent, name)
	switch {
	case i < 0 && !array:
		i = b.subTable(parent, name, docTable)
		b.entries[i].explicit = true
	case i < 0 && array:
		elem := map[string]any{}
		b.entries[parent].m[internKey(name)] = []any{elem}
		i = b.add(parent, name, docArrayTable, elem)
		b.entries[i].explicit = true
	case !array && b.entries[i].kind == docTable && !b.entries[i].explicit:
		b.entries[i].explicit = true
	case array && b.entries[i].kind == docArrayTable:
		// A new element: what the previous one held can be defined again.
		b.entries[i].child = 0
		pm := b.entries[parent].m
		arr, ok := pm[string(name)].([]any)
		if !ok {
			b.giveUp()
			return
		}
		elem := map[string]any{}
		pm[string(name)] = append(arr, elem)
		b.entries[i].m = elem
	default:
		b.giveUp()
		return
	}
	b.cur = i
}

// keyValue handles a key-value of the current table.
func (b *docBuilder) keyValue(keys [][]byte, v *unstable.Node) {
	if !b.failed && !b.setKey(b.cur, keys, v) {
		b.giveUp()
	}
}

// setKey defines the (dotted) key in the table of entry parent.
func (b *docBuilder) setKey(parent int32, keys [][]byte, v *unstable.Node) bool {
	for _, name := range keys[:len(keys)-1] {
		i := b.find(parent, name)
		if i < 0 {
			i = b.subTable(parent, name, docDottedKey)
		} else if b.entries[i].kind != docDottedKey {
			return false
		}
		parent = i
	}
	name := keys[len(keys)-1]
	if b.find(parent, name) >= 0 {
		return false
	}
	m := b.entries[parent].m
	id := b.add(parent, name, docValue, nil)
	val, ok := b.value(id, v)
	if ok {
		m[internKey(name)] = val
	}
	return ok
}

// value converts a value node; id is its entry (the parent of the keys of
// an inline table).
func (b *docBuilder) value(id int32, v *unstable.Node) (any, bool) {
	switch v.Kind {
	case unstable.String:
		if iv, ok := internedValues[string(v.Data)]; ok {
			return iv, true
		}
		return string(v.Data), true
	case unstable.Bool:
		return v.Data[0] == 't', true
	case unstable.Integer:
		return plainInt(v.Data)
	case unstable.Array:
		n := 0
		for it := v.Children(); it.Next(); {
			n++
		}
		arr := make([]any, 0, n)
		for it := v.Children(); it.Next(); {
			el := it.Node()
			elID := id
			if el.Kind == unstable.InlineTable || el.Kind == unstable.Array {
				elID = b.add(id, nil, docAnonymous, nil)
			}
			ev, ok := b.value(elID, el)
			if !ok {
				return nil, false
			}
			arr = append(arr, ev)
		}
		return arr, true
	case unstable.InlineTable:
		n := 0
		for it := v.Children(); it.Next(); {
			n++
		}
		m := make(map[string]any, n)
		b.entries[id].m = m
		var keys [][]byte
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				return nil, false
			}
			keys = keys[:0]
			for k := kv.Key(); k.Next(); {
				keys = append(keys, k.Node().Data)
			}
			if !b.setKey(id, keys, kv.Value()) {
				return nil, false
			}
		}
		return m, true
	}
	return nil, false // floats, dates and times: left to toml.Unmarshal
}

// plainInt converts a decimal integer written without sign or underscores
// (or with a minus sign), the only integers the builder converts.
func plainInt(b []byte) (any, bool) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' {
		return nil, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return nil, false
	}
	return n, true
}

// Keys and string values that image trees use again and again are taken
// from these tables instead of being allocated for every file. (Strings are
// immutable: sharing them changes nothing else.)
var (
	internedKeys   = map[string]string{}
	internedValues = map[string]any{}
)

func init() {
	keys := []string{
		// top level, distros, targets, project
		"default-version", "versions", "release-ver", "outputs", "image-stores",
		"publish-labels", "interface-type", "backend", "resource-urn", "name",
		"arch", "hyperv-generation", "default-distro", "version",
		// images
		"distro", "variants", "tests", "profile", "path", "type", "labels",
		"channels", "exclude", "when", "match", "set", "unset", "image",
	}
	for k := range relevantTopKeys {
		keys = append(keys, k)
	}
	keys = append(keys, settingsKeys...)
	var schemaKeys func(m map[string]any)
	schemaKeys = func(m map[string]any) {
		for k, v := range m {
			keys = append(keys, k)
			if sub, ok := v.(map[string]any); ok {
				schemaKeys(sub)
			}
		}
	}
	for k, sub := range deliverySchema {
		keys = append(keys, k)
		schemaKeys(sub)
	}
	values := []string{unresolvedMark}
	values = append(values, definitionTypes...)
	for i := range builtinDims {
		b := &builtinDims[i]
		keys = append(keys, b.Name, b.VariantsKey)
		for _, v := range b.Values {
			values = append(values, v.Canonical, v.KeyPart)
			values = append(values, v.Aliases...)
		}
	}
	for _, k := range keys {
		internedKeys[k] = k
	}
	for _, v := range values {
		internedValues[v] = v
	}
}

// internKey returns name as a string, shared when it is a common key.
func internKey(name []byte) string {
	if s, ok := internedKeys[string(name)]; ok {
		return s
	}
	return string(name)
}
