package variant

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// hclForm is a variant as `jsonencode(source.value)` writes the
// datasource's output: delivery as a string, capabilities as strings.
const hclForm = `{"key":"vm-x86_64-virtualization-gen1","image":"vm","description":"VM","distro":"azl",
 "distro_version":"4.0","release_ver":"4.0.1","arch":"amd64","oci_arch":"","azure_arch":"","platform":"vm",
 "hyperv_generation":"gen1","firmware":"","definition_type":"kiwi","definition_path":"/d/vm.kiwi",
 "profiles":["vm-gen1"],"dimensions":{"arch":"x86_64","hyperv_generation":"V1"},
 "capabilities":{"machine-bootable":"true","container":"false"},"publish_labels":["base-vm"],"publish_channels":[],
 "targets":[{"name":"acg","interface_type":"azure-compute-gallery","backend":"b","resource_urn":"/g","image_name":"vm-gen1"},
            {"name":"acr","interface_type":"oci-registry","backend":"r","resource_urn":"reg.example","image_name":"azl/vm"}],
 "unresolved":["delivery.shared_gallery.image_version"],
 "delivery":"{\"shared_gallery\":{\"image_version\":null,\"publisher\":\"P\",\"n\":9223372036854775807}}"}`

func TestParseReadsTheDatasourcesHCLFormAndNormalisesSpellings(t *testing.T) {
	v, err := Parse("variant", hclForm)
	if err != nil {
		t.Fatal(err)
	}
	if v.Arch != "x86_64" || v.OCIArch != "amd64" || v.AzureArch != "x64" || v.Platform != "virtualization" ||
		v.HyperVGeneration != "V1" || v.Firmware != "bios" {
		t.Errorf("built-ins not canonical: %+v", v)
	}
	if !v.Capabilities["machine-bootable"] || v.Capabilities["container"] || len(v.Capabilities) != 2 {
		t.Errorf("capabilities %v", v.Capabilities)
	}
	if got := v.Delivery.String(); got != `{"shared_gallery":{"image_version":null,"n":9223372036854775807,"publisher":"P"}}` {
		t.Errorf("delivery %s: want compact JSON with sorted keys and exact numbers", got)
	}
	if v.DeliveryString("shared_gallery.publisher") != "P" || v.DeliveryValue("shared_gallery.image_version") != nil ||
		v.DeliveryValue("shared_gallery.none.deeper") != nil || v.DeliveryString("shared_gallery.n") != "" {
		t.Error("DeliveryValue does not follow dotted paths")
	}
	if ts := v.TargetsOf(InterfaceOCIRegistry); len(ts) != 1 || ts[0].ResourceURN != "reg.example" {
		t.Errorf("TargetsOf(oci-registry) = %+v", ts)
	}
	if ts := v.TargetsOf("none"); ts != nil {
		t.Errorf("TargetsOf(none) = %+v", ts)
	}
}

func TestParseReadsTheMatrixJSONFormToTheSameVariant(t *testing.T) {
	a, err := Parse("variant", hclForm)
	if err != nil {
		t.Fatal(err)
	}
	matrixForm, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(matrixForm), `"delivery":{"shared_gallery"`) || !strings.Contains(string(matrixForm), `"container":false`) {
		t.Fatalf("marshalled form is not the matrix JSON form: %s", matrixForm)
	}
	b, err := Parse("variant", string(matrixForm))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the variant:\n%+v\n%+v", a, b)
	}
}

func TestParseNamesTheFieldInEveryError(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"empty":          {"  ", "v is empty"},
		"array":          {`[1]`, "want a JSON object"},
		"syntax":         {`{"key":}`, "malformed JSON at byte"},
		"truncated":      {`{"key":"a"`, "ends before the object is closed"},
		"two values":     {`{"key":"a"} {}`, "more than one value"},
		"no key":         {`{"image":"x"}`, `no "key"`},
		"blank key":      {`{"key":"  "}`, `no "key"`},
		"type":           {`{"key":"a","targets":{}}`, "v.targets"},
		"arch":           {`{"key":"a","arch":"mips"}`, `arch = "mips": unknown architecture`},
		"combination":    {`{"key":"a","arch":"arm64","hyperv_generation":"V1"}`, "aarch64 cannot have hyperv_generation V1"},
		"capability":     {`{"key":"a","capabilities":{"c":1}}`, "capabilities.c"},
		"delivery array": {`{"key":"a","delivery":"[1]"}`, "delivery: want a JSON object"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("v", tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "v") {
				t.Errorf("err = %v, want it to start with the field and hold %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("v", `{"image":"x"}`); !errors.Is(err, ErrNotVariant) {
		t.Errorf("no key: %v is not ErrNotVariant", err)
	}
}

func TestDeliveryIsEmptyObjectWhenAbsentOrNull(t *testing.T) {
	for _, in := range []string{`{"key":"a"}`, `{"key":"a","delivery":null}`, `{"key":"a","delivery":""}`} {
		v, err := Parse("v", in)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		if v.Delivery.String() != "{}" || !strings.Contains(string(b), `"delivery":{}`) || v.DeliveryValue("x") != nil {
			t.Errorf("%s: delivery %q, marshalled %s", in, v.Delivery, b)
		}
	}
}

func TestCloneSharesNothing(t *testing.T) {
	a, _ := Parse("v", hclForm)
	c := a.Clone()
	c.Profiles[0], c.Dimensions["arch"], c.Targets[0].Name, c.Delivery[2] = "x", "x", "x", 'X'
	c.Capabilities["container"], c.PublishLabels[0], c.Unresolved[0] = true, "x", "x"
	if a.Profiles[0] == "x" || a.Dimensions["arch"] == "x" || a.Targets[0].Name == "x" || a.Delivery[2] == 'X' ||
		a.Capabilities["container"] || a.PublishLabels[0] == "x" || a.Unresolved[0] == "x" {
		t.Errorf("clone shares state with the original: %+v", a)
	}
}

func TestFieldsListEveryStringFieldByGoAndJSONName(t *testing.T) {
	v := Variant{Key: "k", HyperVGeneration: "V2", ReleaseVer: "r", ImageName: "n"}
	fs := v.Fields()
	byName := map[string]Field{}
	for _, f := range fs {
		byName[f.Name] = f
	}
	if f := byName["HyperVGeneration"]; f.JSON != "hyperv_generation" || f.Value != "V2" {
		t.Errorf("HyperVGeneration field %+v", f)
	}
	if f := byName["ImageName"]; f.JSON != "image_name" || f.Value != "n" {
		t.Errorf("ImageName field %+v (the omitempty option must not leak into the name)", f)
	}
	if _, ok := byName["Profiles"]; ok {
		t.Error("a list is not a string field")
	}
	names := FieldNames()
	if len(names) != len(fs) || names[0] != "Key" || !slices.Contains(names, "DefinitionPath") || slices.Contains(names, "Delivery") {
		t.Errorf("FieldNames %v", names)
	}
	n := 0
	rt := reflect.TypeFor[Variant]()
	for i := range rt.NumField() {
		if rt.Field(i).Type == reflect.TypeFor[string]() {
			n++
		}
	}
	if n != len(names) {
		t.Errorf("%d string fields, FieldNames has %d", n, len(names))
	}
}

func TestParseQuotesAtMostFortyCharactersOfANonObject(t *testing.T) {
	forty := strings.Repeat("x", 40)
	_, err := Parse("v", forty)
	if err == nil || !strings.Contains(err.Error(), `"`+forty+`"`) || strings.Contains(err.Error(), "...") {
		t.Errorf("40 characters: %v", err)
	}
	_, err = Parse("v", forty+"yz")
	if err == nil || !strings.Contains(err.Error(), `"`+forty+`..."`) || strings.Contains(err.Error(), "yz") {
		t.Errorf("42 characters: %v", err)
	}
}

func TestPickTargetTakesTheNamedOrTheOnlyTargetOfAnInterface(t *testing.T) {
	v, err := Parse("v", hclForm)
	if err != nil {
		t.Fatal(err)
	}
	if tg, err := v.PickTarget(InterfaceOCIRegistry, ""); err != nil || tg == nil || tg.Name != "acr" {
		t.Errorf("the only oci target: %+v %v", tg, err)
	}
	if tg, err := v.PickTarget(InterfaceAzureComputeGallery, "acg"); err != nil || tg == nil || tg.ImageName != "vm-gen1" {
		t.Errorf("the named gallery target: %+v %v", tg, err)
	}
	if tg, err := v.PickTarget("none", ""); tg != nil || err != nil {
		t.Errorf("no target of the interface: %+v %v, want nil and no error", tg, err)
	}
	if _, err := v.PickTarget(InterfaceOCIRegistry, "ghcr"); err == nil || !strings.Contains(err.Error(), `target = "ghcr"`) || !strings.Contains(err.Error(), "it has acr") {
		t.Errorf("an unknown name: %v", err)
	}
	if _, err := v.PickTarget("none", "x"); err == nil || !strings.Contains(err.Error(), "it has none") {
		t.Errorf("a name with no candidates: %v", err)
	}
	v.Targets = append(v.Targets, Target{Name: "quay", InterfaceType: InterfaceOCIRegistry})
	if _, err := v.PickTarget(InterfaceOCIRegistry, ""); err == nil || !strings.Contains(err.Error(), "2 oci-registry targets (acr, quay): choose one with target") {
		t.Errorf("two candidates and no name: %v", err)
	}
}

func TestDeliveryUnmarshalOfBlankTextIsNoTables(t *testing.T) {
	for _, in := range []string{"", "  \n"} {
		d := Delivery(`{"old":1}`)
		if err := d.UnmarshalJSON([]byte(in)); err != nil || d != nil {
			t.Errorf("UnmarshalJSON(%q) = %q, %v; want no tables and no error", in, d, err)
		}
	}
}

func TestParseListReadsTheMatrixVariantsAndTheCIMatrix(t *testing.T) {
	for _, text := range []string{`[{"key":"a","arch":"amd64"},{"key":"b"}]`, `{"include":[{"key":"a","arch":"amd64"},{"key":"b"}]}`} {
		vs, err := ParseList("variants", text)
		if err != nil || len(vs) != 2 || vs[0].Arch != "x86_64" || vs[1].Key != "b" {
			t.Fatalf("%s: %+v %v", text, vs, err)
		}
	}
	if _, err := ParseList("variants", `[{"key":"a"},{"arch":"x"}]`); err == nil || !strings.Contains(err.Error(), "variants[1]") {
		t.Fatalf("a bad element: %v", err)
	}
	if _, err := ParseList("variants", `"x"`); err == nil || !strings.Contains(err.Error(), "want a JSON array of variants") {
		t.Fatalf("not a list: %v", err)
	}
}
