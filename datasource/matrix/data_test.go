package matrix

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"

	"github.com/osimage/packer-plugin-osimage/internal/release"
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

// With a state, each variant says which steps of the stage are pending and
// which revision the run works on; the components get the store in the
// variant.
func TestTheStateSaysWhatIsPendingPerVariant(t *testing.T) {
	dir := t.TempDir()
	store := release.Dir{Root: dir}
	cfg := Config{ConfigPath: repo(t, "example/azurelinux/azldev.toml"), State: dir, Stage: "publish"}
	out, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.Variants {
		if v.State != dir || v.Revision != 0 || v.Stage != "publish" || strings.Join(v.Pending, ",") != "build,publish" ||
			!strings.HasSuffix(v.ReleaseName, "-r0") || !strings.HasPrefix(v.ReleaseName, v.Image+"-4.0-") {
			t.Fatalf("fresh state: %+v", v)
		}
	}
	// vm-base gen2 x86_64 built and published, container-base aarch64 built.
	done := func(key string, publish bool) {
		ref := release.Ref{Store: store, Release: "4.0", Key: key}
		image := strings.SplitN(key, "-", 3)[0] + "-" + strings.SplitN(key, "-", 3)[1]
		if _, err := release.Update(context.Background(), ref, 0, release.Doc{Image: image}, func(d *release.Doc) error {
			now := time.Now()
			d.Built = &now
			if publish {
				for _, v := range out.Variants {
					if v.Key == key {
						for _, tg := range v.Targets {
							d.Target(tg.Name, tg.InterfaceType).Published = &now
						}
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	done("vm-base-x86_64-virtualization-gen2", true)
	done("container-base-aarch64-virtualization", false)
	for stage, want := range map[string]map[string]string{
		"publish": {"vm-base-x86_64-virtualization-gen2": "", "container-base-aarch64-virtualization": "publish", "vm-base-x86_64-virtualization-gen1": "build,publish"},
		"release": {"vm-base-x86_64-virtualization-gen2": "release", "container-base-aarch64-virtualization": "publish,release"},
		"build":   {"vm-base-x86_64-virtualization-gen2": "", "vm-base-aarch64-virtualization-gen2": "build"},
	} {
		cfg.Stage = stage
		out, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Variants {
			if w, ok := want[v.Key]; ok && strings.Join(v.Pending, ",") != w {
				t.Errorf("stage %s, %s: pending %v, want %s", stage, v.Key, v.Pending, w)
			}
		}
	}
	// A revision that does not exist, and a new one.
	two := 2
	cfg.Revision = &two
	if _, err := Run(cfg); err == nil || !strings.Contains(err.Error(), "revision 2 does not exist; ask for r0 (current) or r1 (a new revision)") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("revision 2: %v", err)
	}
	one := 1
	cfg.Revision, cfg.Stage = &one, "build"
	out, err = Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range out.Variants {
		if v.Revision != 1 || strings.Join(v.Pending, ",") != "build" || !strings.HasSuffix(v.ReleaseName, "-r1") {
			t.Fatalf("a new revision rebuilds: %+v", v)
		}
	}
}

func TestStageAndRevisionAreValidated(t *testing.T) {
	err := (&Datasource{}).Configure(map[string]interface{}{"config": "x.toml", "stage": "deploy", "revision": 3})
	if err == nil || !strings.Contains(err.Error(), `stage = "deploy": want one of build, publish, release`) || !strings.Contains(err.Error(), "revision = 3 needs state") {
		t.Fatalf("err = %v", err)
	}
}
