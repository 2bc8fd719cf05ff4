package imagedef

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// fuzzFiles surround the fuzzed root file: an included image, a distro with
// publish targets and a KIWI file, so includes, rules and publishing are
// reachable.
var fuzzFiles = map[string]string{
	"inc/a.image.toml": `[images.a]
definition = { path = "../img.kiwi", profile = ["p"] }
publish.labels = ["vm"]
variants = { architectures = ["x86_64", "aarch64"], hyperv_generations = ["gen1", "gen2"], tier = ["s", "m"] }
[[images.a.variants.exclude]]
arch = "aarch64"
hyperv_generation = "gen1"
[[images.a.variants.when]]
match = { tier = "m" }
set.delivery.oci.tags = ["*"]
`,
	"distro.toml": `[distros.d]
default-version = "1"
[distros.d.versions.'1']
release-ver = "1.0"
outputs.image-stores = ["acg"]
[[resources.acg]]
publish-labels = ["vm"]
images = [{ name = "x", arch = "x86_64" }, { name = "y", arch = "aarch64" }]
`,
}

// addFileSeeds adds the real image files of the tests and examples, and
// the root files of badCases, to a fuzz corpus.
func addFileSeeds(f *testing.F) {
	for _, p := range []string{
		"testdata/alpine/alpine.image.toml",
		"testdata/docexample/images.toml",
		"../../example/azurelinux/base/images/vm-base/vm-base.image.toml",
		"../../example/azurelinux/distro/azurelinux.distro.toml",
	} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, c := range badCases {
		if s, ok := c.files["images.toml"]; ok {
			f.Add([]byte(s))
		}
	}
}

// FuzzLoad feeds arbitrary bytes as the root file of a small in-memory tree
// through Load's decoding and Expand: no input may panic, every error must be
// a *ConfigError, and every result must be unique, valid JSON.
func FuzzLoad(f *testing.F) {
	old := maxCombinations
	maxCombinations = 5000 // keep each input fast
	f.Cleanup(func() { maxCombinations = old })

	for _, seed := range []string{
		`includes = ["inc/**/*.toml", "distro.toml"]`,
		"includes = [\"distro.toml\"]\n" + kiwiImage + "variants.flavor = [\"a\", \"b\"]\n[[variants.when]]\nmatch.flavor = \"a\"\nset.description = \"x\"\n",
		kiwiImage + "[images.img.delivery.shared_gallery]\nimage_version = \"*\"\ncapability = { security_type = \"TrustedLaunch\" }\n",
		"[[resources.t]]\npublish-labels = [\"x\"]\n" + kiwiImage + "publish.labels = [\"x\", \"y\"]\n",
	} {
		f.Add([]byte(seed))
	}
	addFileSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"root.toml": {Data: data}, "img.kiwi": {Data: []byte("x")}}
		for k, v := range fuzzFiles {
			fsys[k] = &fstest.MapFile{Data: []byte(v)}
		}
		l := &loader{fsys: fsys, rootDir: "/fuzz", stat: func(p string) (bool, error) {
			if _, err := fs.Stat(fsys, strings.TrimPrefix(filepath.ToSlash(p), "/fuzz/")); err != nil {
				return false, err
			}
			return false, nil
		}}
		tr, _, err := l.load("root.toml")
		if err != nil {
			checkConfigError(t, err)
			return
		}
		for _, opts := range []Options{{}, {Only: []string{"x86_64"}, Skip: []string{"gen1", "s"}, Strict: true}} {
			vs, _, err := Expand(tr, opts)
			if err != nil {
				checkConfigError(t, err)
				continue
			}
			seen := map[string]bool{}
			for i := range vs {
				if seen[vs[i].Key] || vs[i].Key == "" {
					t.Fatalf("duplicate or empty key %q", vs[i].Key)
				}
				seen[vs[i].Key] = true
				var decoded any
				dec := json.NewDecoder(bytes.NewReader(vs[i].Delivery))
				dec.UseNumber()
				if err := dec.Decode(&decoded); err != nil {
					t.Fatalf("Delivery %s is not JSON: %v", vs[i].Delivery, err)
				}
				want, err := json.Marshal(decoded)
				if err != nil || string(want) != vs[i].Delivery.String() {
					t.Fatalf("Delivery = %s, encoding/json gives %s (%v)", vs[i].Delivery.String(), want, err)
				}
			}
			m, err := MatrixJSON(vs)
			if err != nil || !json.Valid([]byte(m)) {
				t.Fatalf("MatrixJSON: %v", err)
			}
		}
	})
}

func checkConfigError(t *testing.T, err error) {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Kind == nil || ce.Msg == "" {
		t.Fatalf("error %T %q is not a complete *ConfigError", err, err)
	}
}
