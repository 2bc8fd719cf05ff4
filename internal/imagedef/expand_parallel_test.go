package imagedef

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// expandReport is everything Expand returns, as text.
func expandReport(tr *Tree, opts Options) string {
	vs, ws, err := Expand(tr, opts)
	var b strings.Builder
	var ce *ConfigError
	if errors.As(err, &ce) {
		fmt.Fprintf(&b, "error %s:%d:%d %s %s (%v)\n", ce.File, ce.Line, ce.Col, ce.Key, ce.Msg, ce.Kind)
	}
	for _, w := range ws {
		fmt.Fprintln(&b, "warning", w)
	}
	m, _ := MatrixJSON(vs)
	b.WriteString(m)
	return b.String()
}

// parallelTree writes a tree of 40 images with warnings, and optionally
// with a duplicate key (images 21 and 29) and an invalid combination
// (image 33).
func parallelTree(t *testing.T, dup, invalid bool) *Tree {
	files := map[string]string{
		"img.kiwi": "x",
		"images.toml": `includes = ["*.image.toml"]
[distros.azl]
default-version = "1"
[distros.azl.versions.'1']
outputs.image-stores = ["t", "gone"]
[[resources.t]]
publish-labels = ["vm"]
images = [{ name = "x", arch = "x86_64" }]
[[resources.elsewhere]]
publish-labels = ["other"]
[[variants.exclude]]
image = ["i07"]
`,
	}
	for i := range 40 {
		var b strings.Builder
		name := fmt.Sprintf("i%02d", i)
		if dup && i == 21 {
			name = "c x" // its keys are those of "c_x"
		}
		if dup && i == 29 {
			name = "c_x"
		}
		labels := `"vm"`
		if i%9 == 4 {
			labels += `, "other"`
		}
		fmt.Fprintf(&b, "[images.%q]\ndefinition = { path = \"img.kiwi\" }\npublish.labels = [%s]\n", name, labels)
		b.WriteString("variants.architectures = [\"x86_64\", \"aarch64\"]\nvariants.tier = [\"a\", \"b\"]\n")
		if i%5 == 3 {
			b.WriteString("distro = \"nowhere\"\n")
		}
		if invalid && i == 33 {
			b.WriteString("variants.hyperv_generations = [\"gen1\"]\n") // aarch64 allows gen2 only
		}
		files[fmt.Sprintf("%02d.image.toml", i)] = b.String()
	}
	tr, _ := mustLoad(t, filepath.Join(writeTree(t, files), "images.toml"))
	return tr
}

// Images are worked out in parallel; the variants, the warnings and the
// first error must not depend on how many are worked out at once.
func TestExpandDoesNotDependOnProcessors(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		dup, invalid bool
		opts         Options
		want         string // in the report
	}{
		{true, true, Options{}, "duplicate variant key"},
		{false, true, Options{}, "invalid combination"},
		{false, false, Options{}, `"key":"i39-aarch64-virtualization-b"`},
		{false, false, Options{Strict: true}, "strict mode"},
		{false, false, Options{Only: []string{"b"}, Skip: []string{"i05", "nothing"}}, `skip entry "nothing"`},
		{false, false, Options{Only: []string{"none"}}, "no variants left"},
	} {
		tr := parallelTree(t, tc.dup, tc.invalid)
		runtime.GOMAXPROCS(1)
		want := expandReport(tr, tc.opts)
		if !strings.Contains(want, tc.want) {
			t.Fatalf("%+v: report does not mention %q:\n%s", tc.opts, tc.want, want)
		}
		for _, procs := range []int{2, 3, 8} {
			runtime.GOMAXPROCS(procs)
			for range 5 {
				if got := expandReport(tr, tc.opts); got != want {
					t.Fatalf("%+v with %d processors:\n%s\nwith one:\n%s", tc.opts, procs, got, want)
				}
			}
		}
	}
}
