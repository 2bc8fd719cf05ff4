package imagedef

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// badCase is one broken tree and the error it must give.
type badCase struct {
	name    string
	files   map[string]string // img.kiwi is added unless given
	root    string            // default images.toml
	opts    *Options          // set: the error comes from Expand
	kind    error
	file    string // base name of ConfigError.File ("" for none)
	line    int    // expected line, 0 to skip the check
	col     int    // expected column, 0 to skip the check
	key     string // expected ConfigError.Key ("" to skip)
	msgHas  []string
	setupFn func(t *testing.T, dir string)
}

const kiwiImage = "[images.img]\ndefinition = { path = \"img.kiwi\" }\n"

var badCases = []badCase{
	{
		name:  "TOML syntax error names line and column",
		files: map[string]string{"images.toml": "[images.img]\ndescription = \"x\"\ndefinition = { path = \"img.kiwi\" \n"},
		kind:  ErrSyntax, file: "images.toml", line: 3, msgHas: []string{"inline table"},
	},
	{
		name:  "TOML syntax error in an ignored section is still reported",
		files: map[string]string{"images.toml": kiwiImage + "includes2 = [\n[components.x]\n"},
		kind:  ErrSyntax, file: "images.toml", line: 4,
	},
	{
		name:  "table defined twice is a syntax error with its line",
		files: map[string]string{"images.toml": kiwiImage + "[distros.a]\n[distros.a]\n"},
		kind:  ErrSyntax, file: "images.toml", line: 4, col: 2, key: "distros.a",
	},
	{
		name:  "description that is not a string",
		files: map[string]string{"images.toml": kiwiImage + "description = 5\n"},
		kind:  ErrType, file: "images.toml", line: 3, col: 1, key: "images.img.description",
		msgHas: []string{"expected a string, found an integer"},
	},
	{
		name:  "architectures that is not a list",
		files: map[string]string{"images.toml": kiwiImage + "variants.architectures = \"x86_64\"\n"},
		kind:  ErrType, file: "images.toml", line: 3, key: "images.img.variants.architectures",
		msgHas: []string{"expected an array of strings, found a string"},
	},
	{
		name:  "capability that is not a boolean",
		files: map[string]string{"images.toml": kiwiImage + "capabilities = { systemd = \"yes\" }\n"},
		kind:  ErrType, file: "images.toml", line: 3, col: 18, key: "images.img.capabilities.systemd",
		msgHas: []string{"expected a boolean"},
	},
	{
		name:  "delivery field of the wrong type",
		files: map[string]string{"images.toml": kiwiImage + "[images.img.delivery.shared_gallery.capability]\naccelerated_networking = \"on\"\n"},
		kind:  ErrType, file: "images.toml", line: 4, key: "images.img.delivery.shared_gallery.capability.accelerated_networking",
	},
	{
		name:  "unknown architecture lists the accepted values",
		files: map[string]string{"images.toml": kiwiImage + "[images.img.variants]\narchitectures = [\n  \"x86_64\",\n  \"ppc64le\",\n]\n"},
		kind:  ErrUnknownValue, file: "images.toml", line: 6, col: 3, key: "images.img.variants.architectures[1]",
		msgHas: []string{`unknown architecture "ppc64le"`, "x86_64 (or amd64, x64, x86-64), aarch64 (or arm64)"},
	},
	{
		name:  "unknown Hyper-V generation",
		files: map[string]string{"images.toml": kiwiImage + "variants = { hyperv_generations = [\"gen3\"] }\n"},
		kind:  ErrUnknownValue, file: "images.toml", line: 3, key: "images.img.variants.hyperv_generations[0]",
		msgHas: []string{`"gen3"`, "V1 (or gen1, 1, v1), V2 (or gen2, 2, v2)"},
	},
	{
		name:  "unknown architecture in a target image",
		files: map[string]string{"images.toml": kiwiImage + "[[resources.t]]\nimages = [{ name = \"n\", arch = \"sparc\" }]\n"},
		kind:  ErrUnknownValue, file: "images.toml", line: 4, key: "resources.t[0].images[0].arch",
	},
	{
		name:  "dimension key spelled like the dimension",
		files: map[string]string{"images.toml": kiwiImage + "variants.arch = [\"x86_64\"]\n"},
		kind:  ErrValue, key: "images.img.variants.arch", msgHas: []string{"use architectures"},
	},
	{
		name: "duplicate image names across files name both files",
		files: map[string]string{
			"images.toml":  "includes = [\"a.image.toml\", \"b.image.toml\"]\n",
			"a.image.toml": kiwiImage, "b.image.toml": "\n" + kiwiImage,
		},
		kind: ErrDuplicateImage, file: "b.image.toml", line: 2, key: "images.img", msgHas: []string{"a.image.toml"},
	},
	{
		name: "include cycle names the chain",
		files: map[string]string{
			"images.toml": "includes = [\"a.toml\"]\n", "a.toml": "includes = [\"sub/b.toml\"]\n", "sub/b.toml": "includes = [\"../a.toml\"]\n",
		},
		kind: ErrIncludeCycle, file: "b.toml", line: 1, key: "includes[0]", msgHas: []string{"a.toml -> sub/b.toml -> a.toml"},
	},
	{
		name:  "file that includes itself through a glob",
		files: map[string]string{"images.toml": "includes = [\"*.toml\"]\n"},
		kind:  ErrIncludeCycle, msgHas: []string{"images.toml -> images.toml"},
	},
	{
		name:  "include above the tree root",
		files: map[string]string{"sub/images.toml": "includes = [\"../outside.toml\"]\n", "outside.toml": ""},
		root:  "sub/images.toml", kind: ErrIncludeEscape, file: "images.toml", line: 1, key: "includes[0]", msgHas: []string{"outside the tree root"},
	},
	{
		name:  "glob above the tree root",
		files: map[string]string{"sub/images.toml": "includes = [\"../*.toml\"]\n"},
		root:  "sub/images.toml", kind: ErrIncludeEscape,
	},
	{
		name:  "absolute include outside the tree root",
		files: map[string]string{"images.toml": "includes = [\"/etc/passwd\"]\n"},
		kind:  ErrIncludeEscape,
	},
	{
		name:  "include through a symbolic link that leaves the root",
		files: map[string]string{"sub/images.toml": "includes = [\"link.toml\"]\n", "secret.toml": kiwiImage},
		root:  "sub/images.toml", kind: ErrIncludeEscape, msgHas: []string{"is a link to"},
		setupFn: func(t *testing.T, dir string) {
			if err := os.Symlink(filepath.Join(dir, "secret.toml"), filepath.Join(dir, "sub", "link.toml")); err != nil {
				t.Fatal("cannot make a symbolic link:", err)
			}
		},
	},
	{
		name:  "glob match that is a link out of the root",
		files: map[string]string{"sub/images.toml": "includes = [\"*.image.toml\"]\n", "secret.toml": kiwiImage},
		root:  "sub/images.toml", kind: ErrIncludeEscape, msgHas: []string{"evil.image.toml is a link to"},
		setupFn: func(t *testing.T, dir string) {
			if err := os.Symlink(filepath.Join(dir, "secret.toml"), filepath.Join(dir, "sub", "evil.image.toml")); err != nil {
				t.Fatal("cannot make a symbolic link:", err)
			}
		},
	},
	{
		name:  "glob in a directory that is a link out of the root",
		files: map[string]string{"sub/images.toml": "includes = [\"ext/**/*.toml\"]\n", "outside/a.toml": kiwiImage},
		root:  "sub/images.toml", kind: ErrIncludeEscape, msgHas: []string{"ext is a link to"},
		setupFn: func(t *testing.T, dir string) {
			if err := os.Symlink(filepath.Join(dir, "outside"), filepath.Join(dir, "sub", "ext")); err != nil {
				t.Fatal("cannot make a symbolic link:", err)
			}
		},
	},
	{
		name:  "missing literal include",
		files: map[string]string{"images.toml": "includes = [\"distro/none.toml\"]\n"},
		kind:  ErrIncludeMissing, file: "images.toml", line: 1, col: 13, key: "includes[0]", msgHas: []string{"none.toml does not exist"},
	},
	{
		name:  "includes that is not a list",
		files: map[string]string{"images.toml": "includes = \"a.toml\"\n"},
		kind:  ErrType, file: "images.toml", line: 1, key: "includes",
	},
	{
		name:  "includes written as a dotted table",
		files: map[string]string{"images.toml": "includes.flavor = [\"a\"]\n[[variants.when]]\nmatch.flavor = \"a\"\n"},
		kind:  ErrType, file: "images.toml", line: 1, col: 1, key: "includes",
	},
	{
		name:  "includes entry that is not a string",
		files: map[string]string{"images.toml": "includes = [\n  \"a.toml\",\n  42,\n]\n"},
		kind:  ErrType, line: 3, col: 3, key: "includes[1]", msgHas: []string{"expected a string, found an integer"},
	},
	{
		name:  "definition file that does not exist",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { path = \"img/none.kiwi\" }\n"},
		kind:  ErrDefinitionMissing, file: "images.toml", line: 2, key: "images.img.definition.path",
		msgHas: []string{"img/none.kiwi", "expected an existing KIWI file"},
	},
	{
		name: "definition set by a when rule is checked too",
		files: map[string]string{"images.toml": kiwiImage +
			"variants.architectures = [\"x86_64\", \"aarch64\"]\n[[images.img.variants.when]]\nmatch.arch = \"aarch64\"\nset.definition.path = \"arm.kiwi\"\n"},
		kind: ErrDefinitionMissing, line: 6, key: "images.img.variants.when[0].set.definition.path",
	},
	{
		name:  "unknown definition type",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { type = \"mkosi\", path = \"img.kiwi\" }\n"},
		kind:  ErrUnknownValue, key: "images.img.definition.type", msgHas: []string{"expected one of: kiwi"},
	},
	{
		name:  "image without a definition path",
		files: map[string]string{"images.toml": "[images.img]\ndescription = \"no definition\"\n"},
		opts:  &Options{}, kind: ErrValue, key: "images.img.definition", msgHas: []string{"no definition path"},
	},
	{
		name:  "duplicate variant keys",
		files: map[string]string{"images.toml": kiwiImage + "variants.size = [\"x y\", \"x_y\"]\n"},
		opts:  &Options{}, kind: ErrDuplicateKey, key: "images.img", msgHas: []string{`"img-x86_64-virtualization-x_y"`},
	},
	{
		name:  "aarch64 with generation 1 and no exclude rule",
		files: map[string]string{"images.toml": kiwiImage + "variants = { architectures = [\"aarch64\"], hyperv_generations = [\"gen1\", \"gen2\"] }\n"},
		opts:  &Options{}, kind: ErrCombination, line: 3,
		msgHas: []string{"arch aarch64 with hyperv_generation V1", "add an exclude rule"},
	},
	{
		name:  "BIOS with generation 2",
		files: map[string]string{"images.toml": kiwiImage + "variants = { hyperv_generations = [\"gen2\"], firmwares = [\"bios\"] }\n"},
		opts:  &Options{}, kind: ErrCombination, msgHas: []string{"hyperv_generation V2 with firmware bios"},
	},
	{
		name:  "when rule on a dimension the image lacks",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch = { flavour = \"x\" }\nset.description = \"d\"\n"},
		kind:  ErrValue, line: 4, key: "images.img.variants.when[0].match.flavour", msgHas: []string{`no dimension "flavour"`, "arch, platform"},
	},
	{
		name:  "exclude rule with a value the dimension does not have",
		files: map[string]string{"images.toml": kiwiImage + "variants.tier = [\"s\", \"m\"]\n[[images.img.variants.exclude]]\ntier = \"xl\"\n"},
		kind:  ErrUnknownValue, key: "images.img.variants.exclude[0].tier", msgHas: []string{"its values are: s, m"},
	},
	{
		name:  "exclude rule with an unknown architecture",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.exclude]]\narch = \"mips\"\n"},
		kind:  ErrUnknownValue, line: 4, key: "images.img.variants.exclude[0].arch",
	},
	{
		name:  "when rule that sets a key it cannot",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch.arch = \"x86_64\"\nset.distro = \"other\"\n"},
		kind:  ErrValue, line: 5, key: "images.img.variants.when[0].set.distro",
	},
	{
		name:  "publish target written as a plain table",
		files: map[string]string{"images.toml": kiwiImage + "[resources.acg]\npublish-labels = [\"x\"]\n"},
		kind:  ErrType, line: 3, key: "resources.acg", msgHas: []string{"[[resources.acg]]"},
	},
	{
		name: "publish target declared in two files",
		files: map[string]string{
			"images.toml": "includes = [\"a.toml\", \"b.toml\"]\n" + kiwiImage,
			"a.toml":      "[[resources.t]]\n", "b.toml": "[[resources.t]]\n",
		},
		kind: ErrDuplicateTarget, file: "b.toml", msgHas: []string{"a.toml"},
	},
	{
		name:  "not-a-number in delivery",
		files: map[string]string{"images.toml": kiwiImage + "delivery.custom.size = nan\n"},
		kind:  ErrValue, key: "images.img.delivery.custom.size", msgHas: []string{"finite"},
	},
	{
		name:  "unknown distro option lists the distros",
		files: map[string]string{"images.toml": kiwiImage + "[distros.azl]\n"},
		opts:  &Options{Distro: "fedora"}, kind: ErrUnknownDistro, msgHas: []string{`"fedora"`, "azl"},
	},
	{
		name:  "unknown version option lists the versions",
		files: map[string]string{"images.toml": kiwiImage + "[distros.azl.versions.'4.0']\n"},
		opts:  &Options{Version: "5.0"}, kind: ErrUnknownDistro, msgHas: []string{`"5.0"`, "4.0"},
	},
	{
		name:  "tree without images",
		files: map[string]string{"images.toml": "[distros.azl]\n"},
		opts:  &Options{}, kind: ErrNoVariants, msgHas: []string{"declares no [images.NAME] table"},
	},
	{
		name:  "matrix too large",
		files: map[string]string{"images.toml": kiwiImage + "variants = { a = [" + manyValues(1001) + "], b = [" + manyValues(1001) + "] }\n"},
		opts:  &Options{}, kind: ErrTooLarge,
	},
	{
		name:  "root file that does not exist",
		files: map[string]string{"other.toml": ""},
		kind:  ErrRead, msgHas: []string{"no such file"},
	},
	{
		name:  "root that is a directory",
		files: map[string]string{"images.toml/x.toml": ""},
		kind:  ErrRead, msgHas: []string{"is a directory"},
	},
}

func manyValues(n int) string {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = `"v` + strconv.Itoa(i) + `"`
	}
	return strings.Join(vals, ", ")
}

func TestBadInputGivesLocatedTypedErrors(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"img.kiwi": "x"}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := writeTree(t, files)
			if tc.setupFn != nil {
				tc.setupFn(t, dir)
			}
			root := tc.root
			if root == "" {
				root = "images.toml"
			}
			tr, _, err := Load(filepath.Join(dir, filepath.FromSlash(root)))
			if tc.opts != nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				_, _, err = Expand(tr, *tc.opts)
			}
			if err == nil {
				t.Fatalf("no error, want %v", tc.kind)
			}
			t.Log(err)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %q is not %v", err, tc.kind)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError", err)
			}
			if tc.file != "" && filepath.Base(ce.File) != tc.file {
				t.Errorf("file = %q, want %s", ce.File, tc.file)
			}
			if tc.line != 0 && ce.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", ce.Line, tc.line, err)
			}
			if tc.col != 0 && ce.Col != tc.col {
				t.Errorf("col = %d, want %d (%v)", ce.Col, tc.col, err)
			}
			if tc.key != "" && ce.Key != tc.key {
				t.Errorf("key = %q, want %q", ce.Key, tc.key)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}
