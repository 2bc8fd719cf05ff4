package variant

import (
	"reflect"
	"strings"
)

// Field is one scalar (string) field of a Variant: its Go name (used for
// Packer's generated data, build.Arch), its JSON name (used for labels and
// the datasource) and its value.
type Field struct {
	Name, JSON, Value string
}

// stringFields are the indexes of Variant's string fields, in order.
var stringFields = func() (out [][2]string) {
	t := reflect.TypeFor[Variant]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.String || f.Type != reflect.TypeFor[string]() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, [2]string{f.Name, name})
	}
	return out
}()

// Fields returns v's string fields in declaration order, so components
// list the variant's fields from the type, never by hand.
func (v *Variant) Fields() []Field {
	rv := reflect.ValueOf(v).Elem()
	out := make([]Field, len(stringFields))
	for i, f := range stringFields {
		out[i] = Field{Name: f[0], JSON: f[1], Value: rv.FieldByName(f[0]).String()}
	}
	return out
}

// FieldNames returns the Go names of the string fields, in order (the
// names of the generated data a component exposes for the variant).
func FieldNames() []string {
	out := make([]string, len(stringFields))
	for i, f := range stringFields {
		out[i] = f[0]
	}
	return out
}
