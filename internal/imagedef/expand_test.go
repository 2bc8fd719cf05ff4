package imagedef

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The version an image builds for comes from Options.Version (for the
// chosen distro only), else the project's default-distro version (for that
// distro only), else the distro's default-version, else its only version.
func TestVersionComesFromOptionsThenProjectThenDistroThenTheOnlyOne(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"x.kiwi": "x",
		"images.toml": `[project]
default-distro = { name = "azl", version = "4" }
[distros.azl]
default-version = "3"
[distros.azl.versions.'3']
release-ver = "3.0"
[distros.azl.versions.'4']
release-ver = "4.0"
[distros.azl.versions.'5']
release-ver = "5.0"
[distros.fed.versions.'43']
release-ver = "43"
[distros.two.versions.'1']
[distros.two.versions.'2']
[images.a]
definition = { path = "x.kiwi" }
[images.f]
distro = "fed"
definition = { path = "x.kiwi" }
[images.t]
distro = "two"
definition = { path = "x.kiwi" }
`,
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	for _, tc := range []struct {
		opts Options
		want string // distro/version/release-ver of a, f and t
	}{
		{Options{}, "azl/4/4.0 fed/43/43 two//"},
		{Options{Version: "5"}, "azl/5/5.0 fed/43/43 two//"},
		{Options{Distro: "fed", Version: "43"}, "fed/43/43 fed/43/43"},
	} {
		vs, _ := mustExpand(t, tr, tc.opts)
		var got []string
		for _, v := range vs {
			got = append(got, v.Distro+"/"+v.DistroVersion+"/"+v.ReleaseVer)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: distro/version/release-ver of a, f, t = %v, want %s", tc.opts, got, tc.want)
		}
	}
}

// A tree without [distros] tables accepts any distro name, from the
// options or the image, without a warning: its variants carry the name and
// no version.
func TestDistroNameOnATreeWithoutDistrosIsTakenAsGiven(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.toml": kiwiImage + "[images.fed]\ndistro = \"fedora\"\ndefinition = { path = \"img.kiwi\" }\n", "img.kiwi": "x"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, ws := mustExpand(t, tr, Options{Distro: "azl"})
	if len(vs) != 1 || vs[0].Distro != "azl" || vs[0].DistroVersion != "" {
		t.Errorf("variants = %+v, want one of distro azl without a version (fed is dropped)", vs)
	}
	vs, ws2 := mustExpand(t, tr, Options{})
	if len(vs) != 2 || vs[0].Distro != "fedora" || len(ws)+len(ws2) != 0 {
		t.Errorf("variants = %+v, warnings %v %v; want fed of distro fedora and no warnings", vs, ws, ws2)
	}
}

// The limit on combinations counts every image's cross product before
// exclusions; a tree of exactly the limit expands.
func TestCombinationLimitAllowsExactlyTheLimit(t *testing.T) {
	defer func(old int) { maxCombinations = old }(maxCombinations)
	maxCombinations = 6
	for _, tc := range []struct {
		dims string // the tier values of images a and b
		ok   bool
	}{
		{`a = ["1","2","3","4","5","6"]`, true},
		{`a = ["1","2","3","4","5","6","7"]`, false},
		{`a = ["1","2","3"]` + "\n" + `b = ["1","2","3"]`, true},
		{`a = ["1","2","3"]` + "\n" + `b = ["1","2","3","4"]`, false},
		{`a = ["1","2","3","4","5","6"], size = ["s","m"]`, false}, // the limit is reached before the last dimension
	} {
		var b strings.Builder
		for _, line := range strings.Split(tc.dims, "\n") {
			name, vals, _ := strings.Cut(line, " = ")
			b.WriteString("[images." + name + "]\ndefinition = { path = \"img.kiwi\" }\nvariants = { tier = " + vals + " }\n")
		}
		dir := writeTree(t, map[string]string{"images.toml": b.String(), "img.kiwi": "x"})
		tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
		_, _, err := Expand(tr, Options{})
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s with a limit of 6: err = %v, want ok = %v", tc.dims, err, tc.ok)
		}
	}
}

// An error's text names only what is known: no ":0" for an unknown line or
// column, no position without a file.
func TestConfigErrorTextOmitsUnknownParts(t *testing.T) {
	for _, tc := range []struct {
		e    ConfigError
		want string
	}{
		{ConfigError{File: "f.toml", Msg: "m"}, "f.toml: m"},
		{ConfigError{File: "f.toml", Line: 3, Msg: "m"}, "f.toml:3: m"},
		{ConfigError{File: "f.toml", Line: 3, Col: 4, Key: "k", Msg: "m"}, "f.toml:3:4: k: m"},
		{ConfigError{Line: 3, Col: 4, Key: "k", Msg: "m"}, "k: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
		w := Warning{File: tc.e.File, Line: tc.e.Line, Col: tc.e.Col, Key: tc.e.Key, Msg: tc.e.Msg}
		if got := w.String(); got != tc.want {
			t.Errorf("warning %+v: %q, want %q", w, got, tc.want)
		}
	}
}

// errors.Is sees both the kind of a problem and its cause.
func TestConfigErrorMatchesItsKindAndItsCause(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.toml": `includes = ["none.toml"]`})
	_, _, err := Load(filepath.Join(dir, "images.toml"))
	if !errors.Is(err, ErrIncludeMissing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want ErrIncludeMissing wrapping fs.ErrNotExist", err)
	}
	if e := (&ConfigError{Msg: "m", Kind: ErrValue}); !errors.Is(e, ErrValue) || errors.Is(e, ErrType) {
		t.Errorf("a ConfigError without a cause matches kinds other than its own")
	}
}

// A variant key keeps ASCII letters (A to Z, a to z), digits, ".", "_" and
// "-" and turns every other character into "_".
func TestVariantKeyKeepsLettersDigitsDotUnderscoreDash(t *testing.T) {
	dir := writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": kiwiImage +
		`variants.v = ["AZaz09._-", "@[\u0060{/:+ é"]` + "\n"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	got := keysOf(vs)
	want := []string{"img-x86_64-virtualization-AZaz09._-", "img-x86_64-virtualization-_________"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys = %q, want %q", got, want)
	}
}

// A matrix of more than 1<<16 combinations is not expanded into one
// preallocated array (each image allocates its own); exclusions still drop
// the variants and the images after the big one keep theirs.
func TestAMatrixLargerThanThePreallocatedArrayExpands(t *testing.T) {
	quoted := func(prefix string, n int) string {
		vs := make([]string, n)
		for i := range vs {
			vs[i] = fmt.Sprintf("%q", fmt.Sprint(prefix, i))
		}
		return "[" + strings.Join(vs, ", ") + "]"
	}
	// 257 x 256 = 65,792 combinations of image big, all but x0 excluded.
	dir := writeTree(t, map[string]string{
		"images.toml": "[images.big]\ndefinition = { path = \"img.kiwi\" }\nvariants = { x = " + quoted("x", 257) + ", y = " + quoted("y", 256) + " }\n" +
			"[images.small]\ndefinition = { path = \"img.kiwi\" }\nvariants = { tier = [\"s\"] }\n" +
			"[[variants.exclude]]\nx = " + strings.Replace(quoted("x", 257), `"x0", `, "", 1) + "\n",
		"img.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	if len(vs) != 257 || vs[0].Key != "big-x86_64-virtualization-x0-y0" || vs[255].Key != "big-x86_64-virtualization-x0-y255" ||
		vs[256].Key != "small-x86_64-virtualization-s" {
		var last []string
		for _, v := range vs[max(0, len(vs)-2):] {
			last = append(last, v.Key)
		}
		t.Errorf("%d variants, the last %v; want 256 of big (x0 by every y) and then small's", len(vs), last)
	}
}

// The warning for a publish label no target carries says where the targets
// were looked for (the tree, a distro, a distro version) and which were
// considered.
func TestUnmatchedLabelWarningNamesWhereItLookedAndTheTargetsConsidered(t *testing.T) {
	labelWarning := func(t *testing.T, files map[string]string, opts Options) string {
		t.Helper()
		tr, _ := mustLoad(t, filepath.Join(writeTree(t, files), "images.toml"))
		_, ws := mustExpand(t, tr, opts)
		for _, w := range ws {
			if strings.Contains(w.Msg, `label "extra"`) {
				return w.Msg
			}
		}
		t.Fatalf("no warning for label extra among %v", ws)
		return ""
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		opts  Options
		want  string
	}{
		{"a distro version with image stores", map[string]string{"images.toml": publishTree, "vm.kiwi": "x"}, Options{Lenient: true},
			`publish label "extra" matches no publish target of distro azl version 4.0 (targets considered: acg)`},
		{"a distro version without outputs", map[string]string{"images.toml": publishTree, "vm.kiwi": "x"}, Options{Version: "4.0-dev", Lenient: true},
			`publish label "extra" matches no publish target of distro azl version 4.0-dev (targets considered: acg, dev-acg)`},
		{"a distro without versions", map[string]string{"vm.kiwi": "x", "images.toml": "[images.vm]\ndefinition = { path = \"vm.kiwi\" }\n" +
			"publish = { labels = [\"extra\"] }\n[distros.azl]\ndescription = \"d\"\n"}, Options{},
			`publish label "extra" matches no publish target of distro azl (targets considered: none)`},
		{"a tree without distros", map[string]string{"vm.kiwi": "x", "images.toml": "[images.vm]\ndefinition = { path = \"vm.kiwi\" }\n" +
			"publish = { labels = [\"extra\"] }\n"}, Options{},
			`publish label "extra" matches no publish target of the tree (targets considered: none)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := labelWarning(t, tc.files, tc.opts); got != tc.want {
				t.Errorf("warning %q, want %q", got, tc.want)
			}
		})
	}
}

// An image that does not give definition.type builds with KIWI, the first
// of the accepted types; "*" leaves it to a later step.
func TestDefinitionTypeDefaultsToKiwiUnlessLeftUnresolved(t *testing.T) {
	dir := writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": kiwiImage +
		"[images.later]\ndefinition = { path = \"img.kiwi\", type = \"*\" }\n"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	if len(vs) != 2 || vs[0].DefinitionType != "kiwi" || vs[1].DefinitionType != "" {
		t.Errorf("definition types %q, %q; want kiwi when not given and empty when \"*\"", vs[0].DefinitionType, vs[1].DefinitionType)
	}
}

// When nothing is left, the report names only the filters that were given,
// and says that every only entry matched something only when some variant
// was dropped by only; in strict mode it is the error, not a warning about
// an unmatched skip entry.
func TestTheEmptyMatrixReportNamesOnlyTheFiltersGiven(t *testing.T) {
	dir := writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": kiwiImage + "[[variants.exclude]]\nimage = \"img\"\n"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	_, _, err := Expand(tr, Options{})
	if err == nil || !strings.HasSuffix(err.Error(), "no variants left: 1 images; 1 combinations; exclude rules removed 1") {
		t.Errorf("no filters: %v, want the report to end at the exclude rules", err)
	}
	_, _, err = Expand(tr, Options{Strict: true, Skip: []string{"zzz"}})
	if err == nil || !strings.Contains(err.Error(), `exclude rules removed 1; skip ["zzz"] removed 0`) {
		t.Errorf("strict, an unmatched skip entry and nothing left: %v, want the empty-matrix report", err)
	}
	dir = writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": kiwiImage})
	tr, _ = mustLoad(t, filepath.Join(dir, "images.toml"))
	_, _, err = Expand(tr, Options{Only: []string{"img"}, Skip: []string{"img"}})
	if err == nil || !strings.HasSuffix(err.Error(), `only ["img"] removed 0; skip ["img"] removed 1`) {
		t.Errorf("only and skip of the same variant: %v, want only removing 0 without a claim about its entries, then skip removing 1", err)
	}
}

// User dimensions expand, and appear in keys, in the order they are
// written, also when the image declares no built-in dimension.
func TestUserDimensionsExpandInTheOrderWritten(t *testing.T) {
	dir := writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": kiwiImage + "variants = { size = [\"s\", \"m\"], cloud = [\"azure\"] }\n"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	want := []string{"img-x86_64-virtualization-s-azure", "img-x86_64-virtualization-m-azure"}
	if got := keysOf(vs); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v (size before cloud, as written)", got, want)
	}
}

// A when rule that sets a key given as "*" resolves it: the key, and every
// path under it, leaves Unresolved; paths under other keys stay. Capability
// and publish-list entries given as "*" are reported by their path.
func TestAWhenRuleThatSetsAnUnresolvedKeyResolvesIt(t *testing.T) {
	dir := writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": `
[images.img]
description = "*"
definition = { path = "img.kiwi", profile = "*" }
capabilities = { machine-bootable = "*" }
publish = { labels = ["*"], channels = ["stable", "*"] }
delivery.shared_gallery = { image_gallery = "g", image_version = "*" }
[images.img.variants]
architectures = ["x86_64", "aarch64"]
[[images.img.variants.when]]
match = { arch = "aarch64" }
set.description = "arm"
set.delivery.shared_gallery = { image_gallery = "g", image_version = "1" }
`})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	all := []string{"capabilities.machine-bootable", "definition.profile", "delivery.shared_gallery.image_version", "description", "publish.channels[1]", "publish.labels[0]"}
	if len(vs) != 2 || !slices.Equal(vs[0].Unresolved, all) {
		t.Fatalf("x86_64 unresolved = %v, want %v", vs[0].Unresolved, all)
	}
	want := []string{"capabilities.machine-bootable", "definition.profile", "publish.channels[1]", "publish.labels[0]"}
	if !slices.Equal(vs[1].Unresolved, want) || vs[1].Description != "arm" {
		t.Errorf("aarch64 (description and delivery set by a when rule): unresolved = %v, description %q; want %v and arm", vs[1].Unresolved, vs[1].Description, want)
	}
}

// A root file that exists but cannot be read (here a Unix socket) is a read
// error naming it.
func TestLoadOfAnUnreadableRootFileNamesIt(t *testing.T) {
	dir, err := os.MkdirTemp("", "root") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "images.toml")
	ln, err := net.Listen("unix", root)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, _, err = Load(root)
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrRead) || ce.File != root || !strings.Contains(err.Error(), "cannot read the root file: ") {
		t.Errorf("Load of a socket as the root: %v, want a read error naming %s", err, root)
	}
}

// A root file that cannot be read is a read error naming it.
func TestLoadOfAMissingRootFileNamesIt(t *testing.T) {
	root := filepath.Join(t.TempDir(), "images.toml")
	_, _, err := Load(root)
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrRead) || ce.File != root || !strings.Contains(err.Error(), "cannot read the root file: ") ||
		!errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing root: %v, want a read error naming %s and wrapping the cause", err, root)
	}
}

// Key paths in messages leave TOML's bare keys (letters, digits, - and _)
// unquoted and quote every other key.
func TestKeyPathsQuoteOnlyKeysThatAreNotBare(t *testing.T) {
	for _, tc := range []struct {
		p    keyPath
		want string
	}{
		{keyPath{"images", "az-AZ_09", "variants"}, "images.az-AZ_09.variants"},
		{keyPath{"v9"}, "v9"},
		{keyPath{"images", "a.b", "[2]"}, `images."a.b"[2]`},
		{keyPath{"images", "a:9"}, `images."a:9"`},
		{keyPath{""}, `""`},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("keyPath%q = %s, want %s", []string(tc.p), got, tc.want)
		}
	}
}

// An error is located at its key; a key at the very start of the file is at
// line 1, column 1; a key that is not written (a missing definition) is
// located at its closest written ancestor.
func TestErrorsAreLocatedAtTheKeyOrItsClosestWrittenAncestor(t *testing.T) {
	for _, tc := range []struct {
		toml, key string
		line, col int
	}{
		{"images = 5\n", "images", 1, 1},
		{"# images\n\n[images.img]\ndefinition = { type = \"kiwi\" }\n", "images.img.definition", 4, 1},
	} {
		dir := writeTree(t, map[string]string{"images.toml": tc.toml})
		tr, _, err := Load(filepath.Join(dir, "images.toml"))
		if err == nil {
			_, _, err = Expand(tr, Options{})
		}
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%q: %v, want a ConfigError", tc.toml, err)
		} else if ce.Key != tc.key || ce.Line != tc.line || ce.Col != tc.col {
			t.Errorf("%q: %v (key %s at %d:%d), want an error at %s, %d:%d", tc.toml, err, ce.Key, ce.Line, ce.Col, tc.key, tc.line, tc.col)
		}
	}
}

// An error about an array inside an array (which go-toml gives no position
// of its own) is located at the outer array's key, not at the file's start.
func TestAnErrorAboutAnArrayInAnArrayIsLocatedAtTheOuterArraysKey(t *testing.T) {
	dir := writeTree(t, map[string]string{"img.kiwi": "x", "images.toml": kiwiImage + "variants.exclude = [[1]]\n"})
	tr, _, err := Load(filepath.Join(dir, "images.toml"))
	if err == nil {
		_, _, err = Expand(tr, Options{})
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "images.img.variants.exclude[0]" || ce.Line != 3 || ce.Col != 10 {
		t.Errorf("err = %v, want an error about images.img.variants.exclude[0] at 3:10 (the exclude key)", err)
	}
}
