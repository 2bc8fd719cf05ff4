package imagedef

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
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
		name:  "definition without a path",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { type = \"kiwi\", profile = \"p\" }\n"},
		opts:  &Options{}, kind: ErrValue, key: "images.img.definition", msgHas: []string{"a definition without a path", "no definition for disks made elsewhere"},
	},
	{
		name:  "duplicate variant keys",
		files: map[string]string{"images.toml": kiwiImage + "variants.size = [\"x y\", \"x_y\"]\n"},
		opts:  &Options{}, kind: ErrDuplicateKey, key: "images.img", msgHas: []string{
			`"img-x86_64-virtualization-x_y" of image img (arch=x86_64, platform=virtualization, size=x_y) is also the key of image img (arch=x86_64, platform=virtualization, size=x y)`},
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
		name:  "definition type that is not a string",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { type = 5, path = \"img.kiwi\" }\n"},
		kind:  ErrType, line: 2, col: 16, key: "images.img.definition.type", msgHas: []string{"expected a string, found an integer"},
	},
	{
		name:  "definition path that is not a string",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { path = true }\n"},
		kind:  ErrType, key: "images.img.definition.path", msgHas: []string{"expected a string, found a boolean"},
	},
	{
		name:  "empty definition path",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { path = \"\" }\n"},
		kind:  ErrValue, key: "images.img.definition.path", msgHas: []string{"empty definition path", "relative to images.toml"},
	},
	{
		name:  "user dimension without values",
		files: map[string]string{"images.toml": kiwiImage + "variants.tier = []\n"},
		kind:  ErrValue, line: 3, key: "images.img.variants.tier", msgHas: []string{"empty list; expected at least one value"},
	},
	{
		name:  "user dimension value listed twice",
		files: map[string]string{"images.toml": kiwiImage + "variants.tier = [\"s\", \"m\", \"s\"]\n"},
		kind:  ErrValue, line: 3, col: 28, key: "images.img.variants.tier[2]", msgHas: []string{`value "s" is listed twice`},
	},
	{
		name:  "user dimension value that is empty or unresolved",
		files: map[string]string{"images.toml": kiwiImage + "variants.tier = [\"s\", \"*\"]\n"},
		kind:  ErrValue, key: "images.img.variants.tier[1]", msgHas: []string{`found "*"; expected a non-empty dimension value`},
	},
	{
		name:  "empty list of architectures",
		files: map[string]string{"images.toml": kiwiImage + "variants.architectures = []\n"},
		kind:  ErrValue, key: "images.img.variants.architectures", msgHas: []string{"empty list; expected at least one of: x86_64"},
	},
	{
		name:  "architecture repeated in another spelling",
		files: map[string]string{"images.toml": kiwiImage + "variants.architectures = [\"x86_64\", \"amd64\"]\n"},
		kind:  ErrValue, key: "images.img.variants.architectures[1]", msgHas: []string{`"amd64" repeats architecture x86_64`},
	},
	{
		name:  "reserved dimension name",
		files: map[string]string{"images.toml": kiwiImage + "variants.image = [\"a\"]\n"},
		kind:  ErrValue, key: "images.img.variants.image", msgHas: []string{`"image" is reserved`},
	},
	{
		name:  "unknown key in a when rule",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch.arch = \"x86_64\"\nsett.description = \"x\"\n"},
		kind:  ErrValue, line: 5, key: "images.img.variants.when[0].sett", msgHas: []string{`unknown key "sett" in a when rule`},
	},
	{
		name:  "when rule without match",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nset.description = \"x\"\n"},
		kind:  ErrValue, line: 3, key: "images.img.variants.when[0]", msgHas: []string{"when rule without match"},
	},
	{
		name:  "when rule that does nothing",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch.arch = \"x86_64\"\n"},
		kind:  ErrValue, key: "images.img.variants.when[0]", msgHas: []string{"when rule does nothing"},
	},
	{
		name:  "when rule that unsets a key it cannot",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch.arch = \"x86_64\"\nunset = [\"delivery.vhd\", \"distro\"]\n"},
		kind:  ErrValue, line: 5, key: "images.img.variants.when[0].unset[1]", msgHas: []string{`cannot unset "distro"`},
	},
	{
		name:  "exclude rule without conditions",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.exclude]]\n"},
		kind:  ErrValue, line: 3, key: "images.img.variants.exclude[0]", msgHas: []string{"empty rule"},
	},
	{
		name:  "rule with an unresolved value",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.exclude]]\narch = [\"x86_64\", \"*\"]\n"},
		kind:  ErrValue, key: "images.img.variants.exclude[0].arch", msgHas: []string{`"*" is not allowed in rules`},
	},
	{
		name:  "rule with an empty list",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.exclude]]\narch = []\n"},
		kind:  ErrValue, key: "images.img.variants.exclude[0].arch", msgHas: []string{"empty list"},
	},
	{
		name:  "rule that names a variants key",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.exclude]]\narchitectures = \"x86_64\"\n"},
		kind:  ErrValue, key: "images.img.variants.exclude[0].architectures", msgHas: []string{"use arch"},
	},
	{
		name:  "unknown key in the top-level variants table",
		files: map[string]string{"images.toml": kiwiImage + "[variants]\narchitectures = [\"x86_64\"]\n"},
		kind:  ErrValue, line: 4, key: "variants.architectures", msgHas: []string{"expected exclude and when"},
	},
	{
		name:  "tree-wide when rule that sets a key it cannot",
		files: map[string]string{"images.toml": kiwiImage + "[[variants.when]]\nmatch.arch = \"x86_64\"\nset.tests = 1\n"},
		kind:  ErrValue, line: 5, key: "variants.when[0].set.tests", msgHas: []string{`cannot set "tests"`},
	},
	{
		name:  "unresolved distro",
		files: map[string]string{"images.toml": kiwiImage + "distro = \"*\"\n"},
		kind:  ErrValue, line: 3, key: "images.img.distro", msgHas: []string{`"*" is not allowed here`},
	},
	{
		name:  "blank image name",
		files: map[string]string{"images.toml": "[images.\" \"]\ndefinition = { path = \"img.kiwi\" }\n"},
		kind:  ErrValue, line: 1, key: `images." "`, msgHas: []string{"empty image name"},
	},
	{
		name:  "image that is not a table",
		files: map[string]string{"images.toml": "[images]\nimg = 1\n"},
		kind:  ErrType, line: 2, key: "images.img", msgHas: []string{"expected a table, found an integer"},
	},
	{
		name:  "default distro that is neither a name nor a table",
		files: map[string]string{"images.toml": kiwiImage + "[project]\ndefault-distro = 4\n"},
		kind:  ErrType, line: 4, key: "project.default-distro", msgHas: []string{"expected a table, found an integer"},
	},
	{
		name:  "default distro version that is not a string",
		files: map[string]string{"images.toml": kiwiImage + "[project]\ndefault-distro = { name = \"azl\", version = 4 }\n"},
		kind:  ErrType, key: "project.default-distro.version", msgHas: []string{"expected a string"},
	},
	{
		name:  "release-ver that is not a string",
		files: map[string]string{"images.toml": kiwiImage + "[distros.azl.versions.'4']\nrelease-ver = 4\n"},
		kind:  ErrType, line: 4, key: "distros.azl.versions.4.release-ver", msgHas: []string{"expected a string"},
	},
	{
		name:  "publish target declared twice in one file",
		files: map[string]string{"images.toml": kiwiImage + "[[resources.t]]\n[[resources.t]]\n"},
		kind:  ErrDuplicateTarget, line: 3, key: "resources.t", msgHas: []string{"declared 2 times"},
	},
	{
		name:  "publish target that is a number",
		files: map[string]string{"images.toml": kiwiImage + "[resources]\nt = 1\n"},
		kind:  ErrType, line: 4, key: "resources.t", msgHas: []string{"expected an array of tables ([[resources.t]]), found an integer"},
	},
	{
		name:  "oci-registry target without a repository for the arch",
		files: map[string]string{"images.toml": kiwiImage + "publish.labels = [\"vm\"]\n[[resources.reg]]\npublish-labels = [\"vm\"]\ninterface-type = \"oci-registry\"\nresource-urn = \"ghcr.io/o\"\n"},
		opts:  &Options{}, kind: ErrTargets, line: 4, key: "resources.reg[0]", msgHas: []string{"publish target reg (oci-registry) names no repository for arch x86_64, so variant img-x86_64-virtualization cannot be published there",
			"an entry without arch serves every arch"},
	},
	{
		name: "gallery target without a definition for the arch",
		files: map[string]string{"images.toml": kiwiImage + "publish.labels = [\"vm\"]\nvariants.architectures = [\"x86_64\", \"aarch64\"]\n[[resources.acg]]\npublish-labels = [\"vm\"]\n" +
			"interface-type = \"azure-compute-gallery\"\nresource-urn = \"/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g\"\nimages = [{ name = \"\", arch = \"aarch64\" }, { name = \"x\", arch = \"x86_64\" }]\n"},
		opts: &Options{}, kind: ErrTargets, line: 9, key: "resources.acg[0].images", msgHas: []string{"names no image definition for arch aarch64, so variant img-aarch64-virtualization"},
	},
	{
		name:  "oci-registry target without resource-urn",
		files: map[string]string{"images.toml": kiwiImage + "publish.labels = [\"vm\"]\n[[resources.reg]]\npublish-labels = [\"vm\"]\ninterface-type = \"oci-registry\"\nimages = [{ name = \"os\" }]\n"},
		opts:  &Options{}, kind: ErrTargets, line: 4, key: "resources.reg[0]", msgHas: []string{"publish target reg (oci-registry) has no resource-urn", "expected resource-urn = the registry host"},
	},
	{
		name:  "unknown key in a target image",
		files: map[string]string{"images.toml": kiwiImage + "[[resources.t]]\nimages = [{ name = \"n\", arch = \"x86_64\", os = \"l\" }]\n"},
		kind:  ErrValue, key: "resources.t[0].images[0].os", msgHas: []string{`unknown key "os" in a target image`},
	},
	{
		name:  "unknown Hyper-V generation in a target image",
		files: map[string]string{"images.toml": kiwiImage + "[[resources.t]]\nimages = [{ name = \"n\", arch = \"x86_64\", hyperv-generation = \"gen9\" }]\n"},
		kind:  ErrUnknownValue, key: "resources.t[0].images[0].hyperv-generation", msgHas: []string{`unknown Hyper-V generation "gen9"`},
	},
	{
		name:  "capabilities that are not a table",
		files: map[string]string{"images.toml": kiwiImage + "capabilities = [\"systemd\"]\n"},
		kind:  ErrType, line: 3, key: "images.img.capabilities", msgHas: []string{"expected a table, found an array"},
	},
	{
		name:  "publish labels that are not strings",
		files: map[string]string{"images.toml": kiwiImage + "publish = { labels = [\"a\", 1] }\n"},
		kind:  ErrType, key: "images.img.publish.labels[1]", msgHas: []string{"expected a string, found an integer"},
	},
	{
		name:  "when rule that sets an unknown publish key",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch.arch = \"x86_64\"\nset.publish.audience = \"all\"\n"},
		kind:  ErrValue, key: "images.img.variants.when[0].set.publish.audience", msgHas: []string{`unknown publish key "audience"`},
	},
	{
		name:  "when rule that sets an unknown definition key",
		files: map[string]string{"images.toml": kiwiImage + "[[images.img.variants.when]]\nmatch.arch = \"x86_64\"\nset.definition.flavour = \"x\"\n"},
		kind:  ErrValue, key: "images.img.variants.when[0].set.definition.flavour", msgHas: []string{`unknown definition key "flavour"`},
	},
	{
		name:  "delivery table that is a string",
		files: map[string]string{"images.toml": kiwiImage + "delivery.vhd = \"p\"\n"},
		kind:  ErrType, line: 3, key: "images.img.delivery.vhd", msgHas: []string{"expected a table, found a string"},
	},
	{
		name:  "known delivery field of the wrong type in a nested table",
		files: map[string]string{"images.toml": kiwiImage + "delivery.shared_gallery.capability = 1\n"},
		kind:  ErrType, key: "images.img.delivery.shared_gallery.capability", msgHas: []string{"expected a table, found an integer"},
	},
	{
		name:  "infinity inside a list",
		files: map[string]string{"images.toml": kiwiImage + "delivery.custom.sizes = [1.5, [inf]]\n"},
		kind:  ErrValue, key: "images.img.delivery.custom.sizes[1][0]", msgHas: []string{"found +Inf; expected a finite number"},
	},
	{
		name:  "empty include",
		files: map[string]string{"images.toml": "includes = [\" \"]\n"},
		kind:  ErrValue, line: 1, col: 13, key: "includes[0]", msgHas: []string{"empty include"},
	},
	{
		name:  "double star inside a segment",
		files: map[string]string{"images.toml": "includes = [\"a/x**/*.toml\"]\n"},
		kind:  ErrValue, key: "includes[0]", msgHas: []string{"must be a whole path segment"},
	},
	{
		name:  "malformed glob",
		files: map[string]string{"images.toml": "includes = [\"[a.toml\"]\n"},
		kind:  ErrValue, key: "includes[0]", msgHas: []string{"bad glob"},
	},
	{
		name:  "include that is a directory",
		files: map[string]string{"images.toml": "includes = [\"sub\"]\n", "sub/a.toml": ""},
		kind:  ErrRead, line: 1, key: "includes[0]", msgHas: []string{"cannot read included file"},
	},
	{
		name:  "definition path that is a directory",
		files: map[string]string{"images.toml": "[images.img]\ndefinition = { path = \"sub\" }\n", "sub/x": ""},
		kind:  ErrDefinitionMissing, line: 2, key: "images.img.definition.path", msgHas: []string{"is a directory"},
	},
	{
		name:  "version of a distro that has none",
		files: map[string]string{"images.toml": kiwiImage + "distro = \"azl\"\n[distros.azl]\ndefault-version = \"9\"\n[distros.azl.versions.'4']\n"},
		opts:  &Options{}, kind: ErrUnknownDistro, line: 4, key: "distros.azl", msgHas: []string{`distro azl has no version "9"; its versions are: 4`},
	},
	{
		name:  "version option without a distro",
		files: map[string]string{"images.toml": kiwiImage},
		opts:  &Options{Version: "4"}, kind: ErrUnknownDistro, key: "version", msgHas: []string{`version "4" given, but there is no distro`},
	},
	{
		name:  "strict mode: target without an image for the arch",
		files: map[string]string{"images.toml": kiwiImage + "publish.labels = [\"vm\"]\nvariants.hyperv_generations = [\"gen2\"]\n[[resources.t]]\npublish-labels = [\"vm\"]\nimages = [{ name = \"a\", arch = \"aarch64\" }]\n"},
		opts:  &Options{Strict: true}, kind: ErrTargets, line: 7, key: "resources.t[0].images",
		msgHas: []string{"publish target t has no image for arch x86_64 and Hyper-V generation V2; image img is not published there for it (strict mode)"},
	},
	{
		name:  "strict mode: image store that names no target",
		files: map[string]string{"images.toml": kiwiImage + "[distros.azl.versions.'4']\noutputs.image-stores = [\"gone\"]\n"},
		opts:  &Options{Strict: true}, kind: ErrTargets, line: 4, col: 25, key: "distros.azl.versions.4.outputs.image-stores[0]",
		msgHas: []string{`image store "gone" names no [[resources.gone]] publish target`},
	},
	{
		name:  "strict mode: image that names an undefined distro",
		files: map[string]string{"images.toml": kiwiImage + "distro = \"fedora\"\n[distros.azl]\n"},
		opts:  &Options{Strict: true}, kind: ErrUnknownDistro, line: 3, key: "images.img.distro",
		msgHas: []string{`no [distros.fedora] table defines distro "fedora"`, "(defined distros: azl)"},
	},
	{
		name:  "strict mode: skip entry that matches nothing",
		files: map[string]string{"images.toml": kiwiImage},
		opts:  &Options{Strict: true, Skip: []string{"nothing"}}, kind: ErrNoVariants, key: "skip",
		msgHas: []string{`skip entry "nothing" matches no variant (strict mode)`},
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

// Keys and rules that cannot matter are warnings that say where they are
// and why they are ignored; loading goes on.
func TestIgnoredKeysAndRulesThatNeverApplyAreLocatedWarnings(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"img.kiwi": "x",
		"images.toml": `[images.img]
definition = { path = "img.kiwi", flavour = "x" }
colour = "blue"
publish = { labels = ["vm"], audience = "all" }
delivery.vhd = { vhd_path = "p", size = 1 }
[[resources.t]]
publish-labels = ["vm"]
region = "west"
[[variants.exclude]]
image = "nothing"
[[variants.when]]
match = { size = "xl" }
set.description = "x"
`,
	})
	_, ws := mustLoad(t, filepath.Join(dir, "images.toml"))
	var got []string
	for _, w := range ws {
		got = append(got, strings.TrimPrefix(w.String(), dir+string(filepath.Separator)))
	}
	want := []string{
		`images.toml:3:1: images.img.colour: unknown image key "colour" ignored; known keys: description, distro, definition, capabilities, publish, delivery, variants, tests`,
		`images.toml:2:35: images.img.definition.flavour: unknown definition key "flavour" ignored; expected type, path or profile`,
		`images.toml:5:34: images.img.delivery.vhd.size: unknown key "size" kept; known keys: vhd_path`,
		`images.toml:4:30: images.img.publish.audience: unknown publish key "audience" ignored; expected labels or channels`,
		`images.toml:8:1: resources.t[0].region: unknown publish target key "region" ignored; known keys: publish-labels, interface-type, backend, resource-urn, images`,
		`images.toml:10:1: variants.exclude[0].image: no image is called "nothing"`,
		`images.toml:12:11: variants.when[0].match.size: no image has a dimension "size", so this rule never applies`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// failingFS is a tree in memory whose directory "bad" cannot be listed.
type failingFS struct{ fstest.MapFS }

func (f failingFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name == "bad" {
		return nil, &fs.PathError{Op: "readdirent", Path: name, Err: errors.New("input/output error")}
	}
	return f.MapFS.ReadDir(name)
}

// A directory a glob must walk but cannot list is an error naming the glob,
// never a silent "no match".
func TestDirectoryAGlobCannotListIsAnError(t *testing.T) {
	fsys := failingFS{fstest.MapFS{
		"root.toml":  {Data: []byte(`includes = ["**/*.image.toml"]`)},
		"ok/a.toml":  {Data: []byte("")},
		"bad/b.toml": {Data: []byte("")},
	}}
	l := &loader{fsys: fsys, rootDir: "/mem", stat: func(string) (bool, error) { return false, nil }}
	_, _, err := l.load("root.toml")
	if !errors.Is(err, ErrRead) || !strings.Contains(err.Error(), `cannot expand glob "**/*.image.toml": input/output error`) {
		t.Errorf("err = %v, want ErrRead naming the glob and the cause", err)
	}
	// A star segment before the last walks each matching directory too.
	fsys.MapFS["root.toml"] = &fstest.MapFile{Data: []byte(`includes = ["*/b.toml"]`)}
	l = &loader{fsys: fsys, rootDir: "/mem", stat: func(string) (bool, error) { return false, nil }}
	_, _, err = l.load("root.toml")
	if !errors.Is(err, ErrRead) || !strings.Contains(err.Error(), `cannot expand glob "*/b.toml": input/output error`) {
		t.Errorf("err = %v, want ErrRead naming the glob */b.toml and the cause", err)
	}
}
