package matrix

import (
	"reflect"
	"strings"
	"testing"

	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/osimage/packer-plugin-osimage/internal/imagedef"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// TestEveryVariantSurvivesJsonencodeIntoTheBuilder is the path a template
// takes: `variant = jsonencode(source.value)` of the datasource's output,
// read back by variant.Parse in osimage-disk and the post-processors, must
// give exactly the variant the matrix expanded.
func TestEveryVariantSurvivesJsonencodeIntoTheBuilder(t *testing.T) {
	d := &Datasource{}
	cfg := repo(t, "example/azurelinux/azldev.toml")
	if err := d.Configure(map[string]interface{}{"config": cfg}); err != nil {
		t.Fatal(err)
	}
	out, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	tree, _, err := imagedef.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := imagedef.Expand(tree, imagedef.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The release fields (revision, release_name, stage, pending) as the
	// data source sets them.
	if err := applyState(d.config, want); err != nil {
		t.Fatal(err)
	}
	i := 0
	for it := out.GetAttr("variants").ElementIterator(); it.Next(); i++ {
		_, v := it.Element()
		// What HCL's jsonencode writes for this value.
		b, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			t.Fatal(err)
		}
		got, err := variant.Parse("variant", string(b))
		if err != nil {
			t.Fatalf("variant %d: %v\n%s", i, err, b)
		}
		if !reflect.DeepEqual(*got, want[i]) {
			t.Errorf("variant %s changed on its way through HCL:\n got %+v\nwant %+v", want[i].Key, *got, want[i])
		}
	}
	if i != len(want) || i == 0 {
		t.Fatalf("%d variants in the output, %d expanded", i, len(want))
	}
}

// TestTheOutputHasTheFieldsOfTheVariant keeps the datasource's HCL shape
// and internal/variant's type one vocabulary: same names, same order.
func TestTheOutputHasTheFieldsOfTheVariant(t *testing.T) {
	names := func(rt reflect.Type, tag string) []string {
		var out []string
		for i := range rt.NumField() {
			n, _, _ := strings.Cut(rt.Field(i).Tag.Get(tag), ",")
			if n != "image_name" { // set by osimage-disk, never by the matrix
				out = append(out, n)
			}
		}
		return out
	}
	got := names(reflect.TypeFor[VariantOutput](), "cty")
	want := names(reflect.TypeFor[variant.Variant](), "json")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("VariantOutput fields\n %v\ndiffer from variant.Variant's\n %v", got, want)
	}
	got = names(reflect.TypeFor[TargetOutput](), "cty")
	want = names(reflect.TypeFor[variant.Target](), "json")
	if !reflect.DeepEqual(got, append(want, "image_name")) && !reflect.DeepEqual(got, want) {
		t.Errorf("TargetOutput fields %v differ from variant.Target's %v", got, want)
	}
}
