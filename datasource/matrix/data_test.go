package matrix

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
)

func repo(t *testing.T, rel string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

func TestExecuteReturnsTheExampleMatrix(t *testing.T) {
	d := &Datasource{}
	if err := d.Configure(map[string]interface{}{"config": repo(t, "example/azurelinux/azldev.toml")}); err != nil {
		t.Fatal(err)
	}
	v, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	if !v.Type().Equals(hcldec.ImpliedType(d.OutputSpec())) {
		t.Fatalf("output type %s differs from the OutputSpec", v.Type().FriendlyName())
	}
	if n, _ := v.GetAttr("count").AsBigFloat().Int64(); n != 5 {
		t.Fatalf("count = %d, want 5", n)
	}
	var keys []string
	for it := v.GetAttr("variants").ElementIterator(); it.Next(); {
		_, vv := it.Element()
		keys = append(keys, vv.GetAttr("key").AsString())
		// Empty collections are empty, never null, so `for` expressions work.
		for _, attr := range []string{"profiles", "targets", "unresolved", "dimensions", "capabilities", "publish_channels"} {
			if vv.GetAttr(attr).IsNull() {
				t.Errorf("%s.%s is null", vv.GetAttr("key").AsString(), attr)
			}
		}
		if vv.GetAttr("arch").AsString() == "aarch64" && vv.GetAttr("hyperv_generation").AsString() == "V1" {
			t.Errorf("aarch64 gen1 variant %s survived the exclude rule", vv.GetAttr("key").AsString())
		}
	}
	want := "container-base-aarch64-virtualization container-base-x86_64-virtualization vm-base-aarch64-virtualization-gen2 vm-base-x86_64-virtualization-gen1 vm-base-x86_64-virtualization-gen2"
	sort.Strings(keys)
	got := strings.Join(keys, " ")
	if got != want {
		t.Fatalf("keys = %s\nwant   %s", got, want)
	}
	var m struct {
		Include []map[string]any `json:"include"`
	}
	if err := json.Unmarshal([]byte(v.GetAttr("matrix_json").AsString()), &m); err != nil || len(m.Include) != 5 {
		t.Fatalf("matrix_json: %v (%d entries)", err, len(m.Include))
	}
}

func TestRealAzureLinuxTreeLoadsUnchanged(t *testing.T) {
	fixture := repo(t, "internal/imagedef/testdata/azurelinux-tomls-base-main/azldev.toml")
	out, err := Run(Config{ConfigPath: fixture})
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]bool{}
	for _, v := range out.Variants {
		images[v.Image] = true
	}
	if len(images) != 5 {
		t.Fatalf("images = %v, want the five of images.toml", images)
	}
}

func TestConfigureNamesMissingAndEmptyFields(t *testing.T) {
	err := (&Datasource{}).Configure(map[string]interface{}{"only": []string{""}})
	if err == nil || !strings.Contains(err.Error(), "config is required") || !strings.Contains(err.Error(), "only[0] is empty") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecuteErrorNamesTheFile(t *testing.T) {
	d := &Datasource{}
	d.Configure(map[string]interface{}{"config": repo(t, "example/azurelinux/azldev.toml"), "only": []string{"no-such-image"}})
	v, err := d.Execute()
	if err == nil || !strings.Contains(err.Error(), "no-such-image") {
		t.Fatalf("err = %v", err)
	}
	if !v.IsNull() || !v.Type().Equals(hcldec.ImpliedType(d.OutputSpec())) {
		t.Fatalf("on error, want a typed null, got %#v", v)
	}
}
