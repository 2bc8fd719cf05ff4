package imagedef

import (
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixturePath is the real Azure Linux tree (azurelinux-tomls, base branch),
// a copy in testdata that tests read and never edit.
func fixturePath(t testing.TB) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("testdata", "azurelinux-tomls-base-main"))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// writeTree writes files (slash paths relative to a new temporary directory)
// and returns the directory.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t testing.TB, path string) (*Tree, []Warning) {
	t.Helper()
	tr, ws, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return tr, ws
}

func mustExpand(t testing.TB, tr *Tree, opts Options) ([]Variant, []Warning) {
	t.Helper()
	vs, ws, err := Expand(tr, opts)
	if err != nil {
		t.Fatalf("Expand: %v", err)
	}
	return vs, ws
}

func keysOf(vs []Variant) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Key
	}
	return out
}

// golden compares got with testdata/golden/name, after replacing root with
// $ROOT; -update rewrites the file.
func golden(t *testing.T, name, root, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, root, "$ROOT")
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got ---\n%s", p, got)
	}
}

// goldenDoc renders variants and warnings for a golden file.
func goldenDoc(t *testing.T, vs []Variant, loadWarnings, expandWarnings []Warning) string {
	t.Helper()
	doc := struct {
		Count          int       `json:"count"`
		Variants       []Variant `json:"variants"`
		LoadWarnings   []string  `json:"load_warnings"`
		ExpandWarnings []string  `json:"expand_warnings"`
	}{Count: len(vs), Variants: vs, LoadWarnings: []string{}, ExpandWarnings: []string{}}
	for _, w := range loadWarnings {
		doc.LoadWarnings = append(doc.LoadWarnings, w.String())
	}
	for _, w := range expandWarnings {
		doc.ExpandWarnings = append(doc.ExpandWarnings, w.String())
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

func TestLoadRealAzureLinuxTreeYieldsItsFiveImages(t *testing.T) {
	root := fixturePath(t)
	tr, ws := mustLoad(t, filepath.Join(root, "azldev.toml"))

	var names []string
	for _, img := range tr.Images {
		names = append(names, img.Name)
	}
	want := []string{"container-base", "container-distroless-base", "container-distroless-debug", "container-distroless-minimal", "vm-base"}
	if !slices.Equal(names, want) {
		t.Fatalf("images = %v, want %v", names, want)
	}
	if tr.DefaultDistro != "azurelinux" {
		t.Errorf("DefaultDistro = %q, want azurelinux", tr.DefaultDistro)
	}
	if d := tr.Distros["azurelinux"]; d == nil || d.DefaultVersion != "4.0-stage2" || len(d.Versions) != 2 {
		t.Errorf("distro azurelinux = %+v, want default-version 4.0-stage2 and two versions", d)
	}
	// The one unmatched glob of the tree: comps/**/*.comp.toml.
	if len(ws) != 1 || !strings.Contains(ws[0].Msg, "**/*.comp.toml") || ws[0].Line != 1 {
		t.Errorf("warnings = %v, want one for the unmatched **/*.comp.toml glob", ws)
	}

	vs, _ := mustExpand(t, tr, Options{})
	if len(vs) != 5 {
		t.Fatalf("got %d variants, want 5: %v", len(vs), keysOf(vs))
	}
	containerKiwi := filepath.Join(root, "base", "images", "container-base", "container-base.kiwi")
	wantProfiles := map[string]string{
		"container-base":               "core",
		"container-distroless-minimal": "distroless-minimal",
		"container-distroless-base":    "distroless-base",
		"container-distroless-debug":   "distroless-debug",
	}
	for _, v := range vs {
		if _, err := os.Stat(v.DefinitionPath); err != nil || !filepath.IsAbs(v.DefinitionPath) {
			t.Errorf("%s: definition path %q does not resolve to an existing absolute path", v.Key, v.DefinitionPath)
		}
		if v.Distro != "azurelinux" || v.DistroVersion != "4.0-stage2" || v.ReleaseVer != "4.0" {
			t.Errorf("%s: distro %s %s %s, want azurelinux 4.0-stage2 4.0", v.Key, v.Distro, v.DistroVersion, v.ReleaseVer)
		}
		if p, ok := wantProfiles[v.Image]; ok {
			if v.DefinitionPath != containerKiwi || !slices.Equal(v.Profiles, []string{p}) {
				t.Errorf("%s: definition %s profiles %v, want %s [%s]", v.Key, v.DefinitionPath, v.Profiles, containerKiwi, p)
			}
		}
	}
	golden(t, "fixture.json", root, goldenDoc(t, vs, ws, nil))
}

func TestExpandAzureLinuxExampleMatchesGolden(t *testing.T) {
	root, _ := filepath.Abs("../../example/azurelinux")
	tr, lws := mustLoad(t, filepath.Join(root, "azldev.toml"))
	vs, ews := mustExpand(t, tr, Options{})
	want := []string{
		"container-base-x86_64-virtualization",
		"container-base-aarch64-virtualization",
		"vm-base-x86_64-virtualization-gen1",
		"vm-base-x86_64-virtualization-gen2",
		"vm-base-aarch64-virtualization-gen2",
	}
	if got := keysOf(vs); !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v", got, want)
	}
	if len(lws)+len(ews) != 0 {
		t.Errorf("unexpected warnings: %v %v", lws, ews)
	}
	byKey := map[string]Variant{}
	for _, v := range vs {
		byKey[v.Key] = v
	}
	gen1 := byKey["vm-base-x86_64-virtualization-gen1"]
	if gen1.Firmware != "bios" || !slices.Equal(gen1.Profiles, []string{"vm-base-gen1"}) ||
		len(gen1.Targets) != 1 || gen1.Targets[0].ImageName != "AzureLinux4-x64-gen1" {
		t.Errorf("gen1 variant = %+v", gen1)
	}
	arm := byKey["vm-base-aarch64-virtualization-gen2"]
	if arm.OCIArch != "arm64" || arm.AzureArch != "Arm64" || arm.Targets[0].ImageName != "AzureLinux4-arm64" {
		t.Errorf("aarch64 variant = %+v", arm)
	}
	ctr := byKey["container-base-aarch64-virtualization"]
	if len(ctr.Targets) != 1 || ctr.Targets[0].Name != "azl4-acr" || ctr.Targets[0].InterfaceType != "oci-registry" {
		t.Errorf("container targets = %+v, want the OCI target only", ctr.Targets)
	}
	golden(t, "azurelinux-example.json", root, goldenDoc(t, vs, lws, ews))
	m, err := MatrixJSON(vs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "azurelinux-example-matrix.json", root, m+"\n")
}

// The Alpine-style set has 4 versions x 2 arches x 2 firmwares x 2
// bootstraps x 4 clouds = 128 combinations. By hand:
//
//	E1 aarch64 & bios:       4 x 1 x 1 x 2 x 4 = 32, leaves 96 (arch/firmware
//	                         pairs left: x86_64/bios, x86_64/uefi, aarch64/uefi)
//	E2 azure & 3.17:         1 x 3 pairs x 2 x 1 = 6, leaves 90
//	E3 generic & tiny:       4 x 3 pairs x 1 x 1 = 12 (no overlap with E2), leaves 78
//	E4 cloudinit & 3.17:     1 x 3 pairs x 1 x {aws, gcp, generic} = 9
//	                         (3.17/cloudinit/azure is already gone by E2), leaves 69
//
// Cross-check per cloud: aws 24-3 = 21, azure 3 versions x 3 x 2 = 18,
// gcp 24-3 = 21, generic 4 x 3 x 1 - 3 = 9; 21+18+21+9 = 69.
func TestExpandAlpineDimensionsGivesHandDerivedCount(t *testing.T) {
	root, _ := filepath.Abs("testdata/alpine")
	tr, _ := mustLoad(t, filepath.Join(root, "alpine.image.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	if len(vs) != 69 {
		t.Fatalf("got %d variants, want 69", len(vs))
	}
	perCloud := map[string]int{}
	for _, v := range vs {
		perCloud[v.Dimensions["cloud"]]++
	}
	if want := map[string]int{"aws": 21, "azure": 18, "gcp": 21, "generic": 9}; !mapsEqual(perCloud, want) {
		t.Errorf("per cloud = %v, want %v", perCloud, want)
	}
	// Alpine's disk size example: 116 + 32 + 16 + 80.
	var found bool
	for _, v := range vs {
		if v.Key != "alpine-aarch64-virtualization-uefi-3.20-cloudinit-azure" {
			continue
		}
		found = true
		qemu := v.DeliveryValue("qemu").(map[string]any)
		if got, _ := json.Marshal(qemu); string(got) != `{"disk_size":[116,32,16,80],"machine_type":"virt"}` {
			t.Errorf("qemu settings = %s", got)
		}
		if !slices.Equal(v.Unresolved, []string{"delivery.vhd.vhd_path"}) {
			t.Errorf("unresolved = %v", v.Unresolved)
		}
	}
	if !found {
		t.Error("variant alpine-aarch64-virtualization-uefi-3.20-cloudinit-azure missing")
	}
	golden(t, "alpine-keys.txt", root, strings.Join(keysOf(vs), "\n")+"\n")
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestOnlyKeepsVariantsMatchingAllEntriesAndSkipDropsAnyMatch(t *testing.T) {
	root, _ := filepath.Abs("testdata/alpine")
	tr, _ := mustLoad(t, filepath.Join(root, "alpine.image.toml"))
	for _, tc := range []struct {
		name       string
		only, skip []string
		want       int
	}{
		{"no filters keep everything", nil, nil, 69},
		{"only one cloud", []string{"azure"}, nil, 18},
		{"only needs every entry", []string{"aarch64", "azure"}, nil, 6},
		{"only accepts arch aliases", []string{"ARM64", "azure"}, nil, 6},
		{"only by image name", []string{"alpine"}, nil, 69},
		{"only by derived or declared firmware", []string{"bios"}, nil, 4*2*4 - 2 - 4 - 3},
		{"skip drops any match", nil, []string{"generic", "gcp"}, 69 - 9 - 21},
		{"only and skip together", []string{"azure"}, []string{"tiny"}, 9},
		{"only by full key", []string{"alpine-x86_64-virtualization-bios-3.20-tiny-aws"}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, _ := mustExpand(t, tr, Options{Only: tc.only, Skip: tc.skip})
			if len(vs) != tc.want {
				t.Errorf("got %d variants, want %d", len(vs), tc.want)
			}
		})
	}
}

func TestZeroVariantsAfterFiltersSaysWhichFilterRemovedWhat(t *testing.T) {
	root, _ := filepath.Abs("testdata/alpine")
	tr, _ := mustLoad(t, filepath.Join(root, "alpine.image.toml"))
	for _, tc := range []struct {
		name       string
		opts       Options
		wantInText []string
	}{
		{"only entry that matches nothing", Options{Only: []string{"gen2"}},
			[]string{"no variants left: 1 images; 128 combinations", "exclude rules removed 59", `only ["gen2"] removed 69`, `"gen2" matches no image name or dimension value`}},
		{"only entries that never meet", Options{Only: []string{"bios", "aarch64"}},
			[]string{`only ["bios", "aarch64"] removed 69`, "no variant matches all of them"}},
		{"skip everything", Options{Skip: []string{"alpine"}},
			[]string{`skip ["alpine"] removed 69`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Expand(tr, tc.opts)
			if !errors.Is(err, ErrNoVariants) {
				t.Fatalf("err = %v, want ErrNoVariants", err)
			}
			for _, s := range tc.wantInText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

const oneImage = `
[images.img]
description = "Image"
definition = { type = "kiwi", path = "img.kiwi" }
`

func TestImageWithoutVariantsGetsDefaults(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.toml": oneImage, "img.kiwi": "x"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	if len(vs) != 1 {
		t.Fatalf("got %d variants", len(vs))
	}
	v := vs[0]
	if v.Key != "img-x86_64-virtualization" || v.Arch != "x86_64" || v.OCIArch != "amd64" || v.AzureArch != "x64" ||
		v.Platform != "virtualization" || v.HyperVGeneration != "" || v.Firmware != "" || v.DefinitionType != "kiwi" {
		t.Errorf("variant = %+v", v)
	}
	if v.DefinitionPath != filepath.Join(dir, "img.kiwi") {
		t.Errorf("definition path = %s", v.DefinitionPath)
	}
}

func TestBuiltinValuesAreNormalisedFromEverySpelling(t *testing.T) {
	for _, tc := range []struct {
		variants string
		want     []string // arch/oci/azure/generation/firmware per variant
	}{
		{`architectures = ["amd64", "ARM64"]`, []string{"x86_64/amd64/x64//", "aarch64/arm64/Arm64//uefi"}},
		{`architectures = ["x64"]
hyperv_generations = ["1", "Gen2"]`, []string{"x86_64/amd64/x64/V1/bios", "x86_64/amd64/x64/V2/uefi"}},
		{`architectures = ["aarch64"]
hyperv_generations = ["v2"]
firmwares = ["EFI"]`, []string{"aarch64/arm64/Arm64/V2/uefi"}},
		{`firmwares = ["legacy", "uefi"]`, []string{"x86_64/amd64/x64//bios", "x86_64/amd64/x64//uefi"}},
	} {
		t.Run(tc.variants, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"images.toml": oneImage + "[images.img.variants]\n" + tc.variants + "\n", "img.kiwi": "x"})
			tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
			vs, _ := mustExpand(t, tr, Options{})
			var got []string
			for _, v := range vs {
				got = append(got, strings.Join([]string{v.Arch, v.OCIArch, v.AzureArch, v.HyperVGeneration, v.Firmware}, "/"))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWhenRulesAppendListsMergeTablesReplaceScalarsAndUnset(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml": `
[images.img]
description = "base"
definition = { type = "kiwi", path = "img.kiwi", profile = ["a"] }
publish = { labels = ["one"] }
delivery.marketplace = { publisher = "P", offer = "O" }
delivery.vhd = { vhd_path = "p" }
delivery.custom = { list = [1], keep = true }

[images.img.variants]
architectures = ["x86_64", "aarch64"]

[[images.img.variants.when]]
match = { arch = "aarch64" }
set.description = "arm"
set.definition.profile = ["b"]
set.publish.labels = ["two"]
set.delivery.marketplace.offer = "O-arm"
set.delivery.custom = { list = [2], extra = "x" }
unset = ["delivery.vhd"]
`,
		"img.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	if len(vs) != 2 {
		t.Fatalf("got %d variants", len(vs))
	}
	x86, arm := vs[0], vs[1]
	if x86.Description != "base" || !slices.Equal(x86.Profiles, []string{"a"}) || x86.Delivery.String() !=
		`{"custom":{"keep":true,"list":[1]},"marketplace":{"offer":"O","publisher":"P"},"vhd":{"vhd_path":"p"}}` {
		t.Errorf("x86_64 variant changed by a rule for aarch64: %+v %s", x86, x86.Delivery.String())
	}
	if arm.Description != "arm" || !slices.Equal(arm.Profiles, []string{"a", "b"}) || !slices.Equal(arm.PublishLabels, []string{"one", "two"}) {
		t.Errorf("aarch64 variant = %+v", arm)
	}
	if got, want := arm.Delivery.String(), `{"custom":{"extra":"x","keep":true,"list":[1,2]},"marketplace":{"offer":"O-arm","publisher":"P"}}`; got != want {
		t.Errorf("aarch64 delivery = %s, want %s", got, want)
	}
}

func TestTreeWideRulesApplyToEveryImageThatHasTheDimension(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml": `
includes = ["rules.toml"]
[images.a]
definition = { path = "x.kiwi" }
variants = { platforms = ["virtualization", "baremetal"], tier = ["s", "m"] }
[images.b]
definition = { path = "x.kiwi" }
variants.platforms = ["vm", "metal"]
`,
		"rules.toml": `
[[variants.exclude]]
platform = "baremetal"
image = "b"
[[variants.exclude]]
tier = "m"
platform = "metal"
[[variants.when]]
match = { tier = "s" }
set.description = "small"
`,
		"x.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	got := keysOf(vs)
	want := []string{"a-x86_64-virtualization-s", "a-x86_64-virtualization-m", "a-x86_64-baremetal-s", "b-x86_64-virtualization"}
	if !slices.Equal(got, want) {
		t.Fatalf("keys = %v, want %v", got, want)
	}
	if vs[0].Description != "small" || vs[1].Description != "" {
		t.Errorf("descriptions = %q %q", vs[0].Description, vs[1].Description)
	}
}

// A tree-wide rule that names a dimension an image lacks is dropped whole
// for that image: its other conditions must not exclude or change the
// image's variants on their own.
func TestTreeWideRuleNamingAMissingDimensionLeavesTheImageAlone(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml": `
[images.a]
definition = { path = "x.kiwi" }
variants = { platforms = ["virtualization", "baremetal"], tier = ["s", "m"] }
[images.b]
definition = { path = "x.kiwi" }
variants.platforms = ["virtualization", "baremetal"]
[[variants.exclude]]
tier = "m"
platform = "baremetal"
[[variants.when]]
match = { tier = "s", platform = "virtualization" }
set.description = "small"
`,
		"x.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	desc := map[string]string{}
	for _, v := range vs {
		desc[v.Key] = v.Description
	}
	want := map[string]string{
		"a-x86_64-virtualization-s": "small", "a-x86_64-virtualization-m": "", "a-x86_64-baremetal-s": "",
		"b-x86_64-virtualization": "", "b-x86_64-baremetal": "",
	}
	if !maps.Equal(desc, want) {
		t.Errorf("image b (no tier dimension) must keep both platforms and no description; key -> description = %v, want %v", desc, want)
	}
}

func TestUnresolvedValuesAreKeptAsNullAndReported(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml": `
[images.img]
description = "*"
definition = { path = "img.kiwi", profile = "*" }
publish = { labels = ["acg"] }
delivery.shared_gallery = { image_gallery = "g", image_version = "*" }
delivery.oci = { tags = ["1", "*"] }

[distros.d.versions.'1']
release-ver = "*"

[[resources.acg]]
publish-labels = ["acg"]
resource-urn = "*"
`,
		"img.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	v := vs[0]
	want := []string{"definition.profile", "delivery.oci.tags[1]", "delivery.shared_gallery.image_version", "description", "release_ver", "targets.acg.resource_urn"}
	if !slices.Equal(v.Unresolved, want) {
		t.Errorf("unresolved = %v, want %v", v.Unresolved, want)
	}
	if v.Description != "" || len(v.Profiles) != 0 || v.ReleaseVer != "" || v.Targets[0].ResourceURN != "" {
		t.Errorf("a \"*\" was used as a literal: %+v", v)
	}
	if got := v.Delivery.String(); got != `{"oci":{"tags":["1",null]},"shared_gallery":{"image_gallery":"g","image_version":null}}` {
		t.Errorf("delivery = %s", got)
	}
}

const publishTree = `
[images.vm]
definition = { path = "vm.kiwi" }
publish = { labels = ["base-vm", "extra"] }
variants = { architectures = ["x86_64", "aarch64"] }

[distros.azl]
default-version = "4.0"
[distros.azl.versions.'4.0']
release-ver = "4.0"
outputs.image-stores = ["acg"]
[distros.azl.versions.'4.0-dev']
release-ver = "4.0"

[[resources.acg]]
publish-labels = ["base-vm"]
interface-type = "azure-compute-gallery"
resource-urn = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
images = [{ name = "x64-def", arch = "amd64" }]

[[resources.dev-acg]]
publish-labels = ["base-vm"]
images = [{ name = "dev-x64", arch = "x86_64" }, { name = "dev-arm64", arch = "arm64" }]
`

func TestPublishTargetsFollowVersionOutputsLabelsAndArch(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.toml": publishTree, "vm.kiwi": "x"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))

	t.Run("default version publishes to its image stores only", func(t *testing.T) {
		vs, ws := mustExpand(t, tr, Options{Lenient: true})
		if len(vs[0].Targets) != 1 || vs[0].Targets[0].Name != "acg" || vs[0].Targets[0].ImageName != "x64-def" {
			t.Errorf("x86_64 targets = %+v", vs[0].Targets)
		}
		if len(vs[1].Targets) != 0 {
			t.Errorf("aarch64 targets = %+v, want none (acg has no aarch64 image)", vs[1].Targets)
		}
		var msgs []string
		for _, w := range ws {
			msgs = append(msgs, w.Msg)
		}
		joined := strings.Join(msgs, "\n")
		if !strings.Contains(joined, `label "extra" matches no publish target`) || !strings.Contains(joined, "no image for arch aarch64") {
			t.Errorf("warnings = %v", msgs)
		}
	})
	t.Run("version without outputs considers every target", func(t *testing.T) {
		vs, _ := mustExpand(t, tr, Options{Version: "4.0-dev", Lenient: true})
		var names []string
		for _, tg := range vs[1].Targets {
			names = append(names, tg.Name+"="+tg.ImageName)
		}
		if !slices.Equal(names, []string{"dev-acg=dev-arm64"}) {
			t.Errorf("aarch64 targets = %v", names)
		}
	})
	t.Run("strict turns an unmatched label into an error", func(t *testing.T) {
		_, _, err := Expand(tr, Options{Version: "4.0-dev", Only: []string{"x86_64"}, Strict: true, Lenient: true})
		var ce *ConfigError
		if !errors.Is(err, ErrUnmatchedLabel) || !errors.As(err, &ce) || ce.Line == 0 || !strings.Contains(ce.Msg, `"extra"`) {
			t.Errorf("err = %v, want ErrUnmatchedLabel for label extra with a line", err)
		}
	})
	t.Run("a label no target of the tree carries is an error by default", func(t *testing.T) {
		_, _, err := Expand(tr, Options{})
		var ce *ConfigError
		if !errors.Is(err, ErrUnmatchedLabel) || !errors.As(err, &ce) || ce.Line != 4 || ce.Key != "images.vm.publish.labels" ||
			!strings.Contains(ce.Msg, `label "extra"`) || !strings.Contains(ce.Msg, "a typo?") || !strings.Contains(ce.Msg, "targets' labels: base-vm") {
			t.Errorf("err = %v, want ErrUnmatchedLabel at images.vm.publish.labels naming extra and the labels targets carry", err)
		}
	})
	t.Run("a label only another version's target carries is a warning", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"vm.kiwi": "x", "images.toml": publishTree + `
[[resources.preview]]
publish-labels = ["extra"]
`})
		tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
		_, ws := mustExpand(t, tr, Options{})
		if !slices.ContainsFunc(ws, func(w Warning) bool {
			return strings.Contains(w.Msg, `label "extra" matches no publish target of distro azl version 4.0`)
		}) {
			t.Errorf("want a warning for extra, got %v", ws)
		}
		if _, _, err := Expand(tr, Options{Strict: true, Only: []string{"x86_64"}}); !errors.Is(err, ErrUnmatchedLabel) {
			t.Errorf("strict: want ErrUnmatchedLabel, got %v", err)
		}
	})
}

func TestGlobIncludesMatchStarQuestionClassAndDoubleStar(t *testing.T) {
	files := map[string]string{
		"a/b/c/deep.image.toml": "[images.deep]\ndefinition = { path = \"../../../x.kiwi\" }\n",
		"top.image.toml":        "[images.top]\ndefinition = { path = \"x.kiwi\" }\n",
		"q1.toml":               "[images.q1]\ndefinition = { path = \"x.kiwi\" }\n",
		"q22.toml":              "[images.q22]\ndefinition = { path = \"x.kiwi\" }\n",
		"k/s.toml":              "[images.s]\ndefinition = { path = \"../x.kiwi\" }\n",
		"k/t.toml":              "[images.t]\ndefinition = { path = \"../x.kiwi\" }\n",
		"x.kiwi":                "x",
	}
	for _, tc := range []struct {
		includes string
		want     []string
	}{
		{`["**/*.image.toml"]`, []string{"deep", "top"}},
		{`["q?.toml"]`, []string{"q1"}},
		{`["k/[s].toml"]`, []string{"s"}},
		{`["k/*.toml", "k/s.toml"]`, []string{"s", "t"}},
		{`["a/**/deep.image.toml"]`, []string{"deep"}},
		{`["*/*.toml"]`, []string{"s", "t"}},
		{`["a/*/c/*.image.toml"]`, []string{"deep"}},
	} {
		t.Run(tc.includes, func(t *testing.T) {
			fs := map[string]string{"root.toml": "includes = " + tc.includes + "\n"}
			for k, v := range files {
				fs[k] = v
			}
			dir := writeTree(t, fs)
			tr, ws := mustLoad(t, filepath.Join(dir, "root.toml"))
			var got []string
			for _, img := range tr.Images {
				got = append(got, img.Name)
			}
			if !slices.Equal(got, tc.want) || len(ws) != 0 {
				t.Errorf("images = %v (warnings %v), want %v", got, ws, tc.want)
			}
		})
	}
}

func TestUnmatchedGlobIsAWarningWithItsPosition(t *testing.T) {
	dir := writeTree(t, map[string]string{"root.toml": "includes = [\n  \"none/*.toml\",\n]\n" + oneImage, "img.kiwi": "x"})
	_, ws := mustLoad(t, filepath.Join(dir, "root.toml"))
	if len(ws) != 1 || ws[0].Line != 2 || ws[0].Key != "includes[0]" || !strings.Contains(ws[0].String(), "root.toml:2:3: includes[0]: glob") {
		t.Errorf("warnings = %v", ws)
	}
}

func TestFileIncludedTwiceIsReadOnce(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"root.toml":   `includes = ["a.toml", "b.toml"]`,
		"a.toml":      `includes = ["common.toml"]`,
		"b.toml":      `includes = ["common.toml"]`,
		"common.toml": oneImage,
		"img.kiwi":    "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "root.toml"))
	if len(tr.Images) != 1 || len(tr.Files) != 4 {
		t.Errorf("images %d files %v", len(tr.Images), tr.Files)
	}
}

func TestSameNameDistroTablesMergeAcrossFiles(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"root.toml": `includes = ["a.distro.toml", "b.distro.toml"]` + "\n" + oneImage,
		"a.distro.toml": `
[distros.azl]
description = "Azure Linux"
default-version = "1"
[distros.azl.versions.'1']
release-ver = "1.0"
[distros.azl.versions.'2']
release-ver = "2.0"
`,
		"b.distro.toml": `
[distros.azl]
default-version = "2"
`,
		"img.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "root.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	if vs[0].Distro != "azl" || vs[0].DistroVersion != "2" || vs[0].ReleaseVer != "2.0" {
		t.Errorf("variant distro %s %s %s, want azl 2 2.0", vs[0].Distro, vs[0].DistroVersion, vs[0].ReleaseVer)
	}
	if d := tr.Distros["azl"]; d.Description != "Azure Linux" || len(d.Files) != 2 {
		t.Errorf("merged distro = %+v", d)
	}
}

func TestDistroOptionDropsImagesOfOtherDistros(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml": `
[images.a]
distro = "azl"
definition = { path = "x.kiwi" }
[images.f]
distro = "fedora"
definition = { path = "x.kiwi" }
[images.n]
definition = { path = "x.kiwi" }
[distros.azl.versions.'4']
release-ver = "4"
[distros.fedora.versions.'43']
release-ver = "43"
`,
		"x.kiwi": "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{Distro: "fedora"})
	if got := keysOf(vs); !slices.Equal(got, []string{"f-x86_64-virtualization", "n-x86_64-virtualization"}) {
		t.Errorf("keys = %v", got)
	}
	if vs[1].Distro != "fedora" || vs[1].ReleaseVer != "43" {
		t.Errorf("image without distro got %s %s", vs[1].Distro, vs[1].ReleaseVer)
	}
}

func TestExpandLeavesTheTreeUnchangedAndVariantsIndependent(t *testing.T) {
	root, _ := filepath.Abs("../../example/azurelinux")
	tr, _ := mustLoad(t, filepath.Join(root, "azldev.toml"))
	first, _ := mustExpand(t, tr, Options{})
	a, _ := MatrixJSON(first)
	// Scribble over the first result; the second must not see it.
	for i := range first {
		if len(first[i].Delivery) > 1 {
			first[i].Delivery[1] = ' ' // the byte after '{'
		}
		if len(first[i].Profiles) > 0 {
			first[i].Profiles[0] = "changed"
		}
	}
	if changed, _ := MatrixJSON(first); changed == a {
		t.Fatal("test did not change anything")
	}
	second, _ := mustExpand(t, tr, Options{})
	if b, _ := MatrixJSON(second); b != a {
		t.Error("Expand results share state with earlier results")
	}
}

func TestMatrixJSONIsStableValidAndEmptyListForNoVariants(t *testing.T) {
	root, _ := filepath.Abs("../../example/azurelinux")
	tr, _ := mustLoad(t, filepath.Join(root, "azldev.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	m1, err := MatrixJSON(vs)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := MatrixJSON(vs)
	var doc struct {
		Include []map[string]any `json:"include"`
	}
	if m1 != m2 || json.Unmarshal([]byte(m1), &doc) != nil || len(doc.Include) != len(vs) || doc.Include[0]["key"] != vs[0].Key {
		t.Errorf("matrix JSON unstable or wrong: %s", m1)
	}
	if empty, _ := MatrixJSON(nil); empty != `{"include":[]}` {
		t.Errorf("empty matrix = %s", empty)
	}
}

func TestDocExampleLoads(t *testing.T) {
	root, _ := filepath.Abs("testdata/docexample")
	tr, lws := mustLoad(t, filepath.Join(root, "images.toml"))
	vs, ews := mustExpand(t, tr, Options{})
	want := []string{
		"container-base-x86_64-virtualization",
		"vm-base-x86_64-virtualization-gen1-standard",
		"vm-base-x86_64-virtualization-gen2-standard",
		"vm-base-x86_64-virtualization-gen2-cvm",
		"vm-base-aarch64-virtualization-gen2-standard",
		"vm-base-aarch64-virtualization-gen2-cvm",
	}
	if got := keysOf(vs); !slices.Equal(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	arm := vs[4]
	if !slices.Equal(arm.PublishLabels, []string{"base-vm", "arm64-preview"}) || arm.DeliveryValue("marketplace") != nil {
		t.Errorf("aarch64 variant = %+v", arm)
	}
	if len(lws) != 0 {
		t.Errorf("load warnings: %v", lws)
	}
	// base-vm and arm64-preview match no target: the doc example has none.
	if len(ews) != 2 {
		t.Errorf("expand warnings: %v", ews)
	}
}

func TestDeliveryJSONMatchesEncodingJSON(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.toml": kiwiImage + `
[images.img.delivery.custom]
html = "<a href='x'>&amp;</a>"
control = "tab\there\u0001\u007f"
unicode = "line\u2028sep \u00e9 \U0001F600"
quote = 'say "hi" \ back'
ints = [0, -1, 9223372036854775807]
floats = [0.0, -0.0, 1.5, 1e-7, 1e21, 123456789.125, 3e-10, 1e300]
date = 1979-05-27
datetime = 1979-05-27T07:32:00Z
local = 1979-05-27T07:32:00
time = 07:32:00
nested = [[1, "a"], { k = true }]
`, "img.kiwi": "x"})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	var decoded map[string]any
	dec := json.NewDecoder(strings.NewReader(vs[0].Delivery.String()))
	dec.UseNumber()
	if err := dec.Decode(&decoded); err != nil {
		t.Fatalf("Delivery is not JSON: %v", err)
	}
	want, err := json.Marshal(decoded)
	if err != nil {
		t.Fatal(err)
	}
	if got := vs[0].Delivery.String(); got != string(want) {
		t.Errorf("Delivery:\n got %s\nwant %s", got, want)
	}
}

func TestLinksInsideTheRootAreFollowedButDirectoryLinksAreNotWalked(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml":       `includes = ["links/alias.toml", "**/*.image.toml"]`,
		"real/a.image.toml": "[images.a]\ndefinition = { path = \"../x.kiwi\" }\n",
		"shared/b.toml":     "[images.b]\ndefinition = { path = \"../x.kiwi\" }\n",
		"x.kiwi":            "x",
	})
	// Paths in a linked file are relative to the link, like its includes.
	if err := os.MkdirAll(filepath.Join(dir, "links"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared/b.toml", filepath.Join(dir, "links", "alias.toml")); err != nil {
		t.Fatal("cannot make a symbolic link:", err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	tr, ws := mustLoad(t, filepath.Join(dir, "images.toml"))
	var names []string
	for _, img := range tr.Images {
		names = append(names, img.Name)
	}
	// a is found once (through real/, not again through dirlink/).
	if !slices.Equal(names, []string{"a", "b"}) || len(ws) != 0 {
		t.Errorf("images = %v, warnings %v", names, ws)
	}
}

func TestExpandCanRunConcurrentlyOnOneTree(t *testing.T) {
	root, _ := filepath.Abs("testdata/alpine")
	tr, _ := mustLoad(t, filepath.Join(root, "alpine.image.toml"))
	want, _ := mustExpand(t, tr, Options{Only: []string{"azure"}})
	wantJSON, _ := MatrixJSON(want)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			vs, _, err := Expand(tr, Options{Only: []string{"azure"}, Skip: []string{"nothing-matches"}})
			if err == nil {
				if got, _ := MatrixJSON(vs); got != wantJSON {
					err = errors.New("different result")
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestImageNamingAnUndefinedDistroDrawsAWarning(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.toml": kiwiImage + "distro = \"fedora\"\n[distros.azl.versions.'4']\nrelease-ver = \"4\"\n",
		"img.kiwi":    "x",
	})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, ws := mustExpand(t, tr, Options{})
	if vs[0].Distro != "fedora" || vs[0].ReleaseVer != "" || len(ws) != 1 || ws[0].Key != "images.img.distro" || ws[0].Line != 3 {
		t.Errorf("variant %+v, warnings %v", vs[0], ws)
	}
	if _, _, err := Expand(tr, Options{Strict: true}); !errors.Is(err, ErrUnknownDistro) {
		t.Errorf("strict: err = %v, want ErrUnknownDistro", err)
	}
}

// Disks made elsewhere (source_image, another builder) need no definition:
// their variants have no definition fields. A when rule can drop one.
func TestImageWithoutDefinitionHasNoDefinitionFields(t *testing.T) {
	dir := writeTree(t, map[string]string{"vm.kiwi": "x", "images.toml": `
[images.edge]
description = "made by a script"
variants.architectures = ["x86_64", "aarch64"]

[images.vm]
definition = { path = "vm.kiwi", profile = "p" }
variants.architectures = ["x86_64", "aarch64"]
[[images.vm.variants.when]]
match.arch = "aarch64"
unset = ["definition"]
`})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, _ := mustExpand(t, tr, Options{})
	got := map[string]string{}
	for _, v := range vs {
		got[v.Key] = v.DefinitionType + " " + filepath.Base(v.DefinitionPath) + " " + strings.Join(v.Profiles, ",")
	}
	want := map[string]string{
		"edge-x86_64-virtualization": " . ", "edge-aarch64-virtualization": " . ",
		"vm-x86_64-virtualization": "kiwi vm.kiwi p", "vm-aarch64-virtualization": " . ",
	}
	if !maps.Equal(got, want) {
		t.Errorf("definition fields = %q, want %q", got, want)
	}
}

// A target image entry without arch serves every arch; an entry for the
// variant's arch wins over it, wherever it is written.
func TestTargetImageWithoutArchServesEveryArchAndAnArchEntryWins(t *testing.T) {
	dir := writeTree(t, map[string]string{"vm.kiwi": "x", "images.toml": `
[images.vm]
definition = { path = "vm.kiwi" }
publish.labels = ["os"]
variants.architectures = ["x86_64", "aarch64"]
variants.hyperv_generations = ["gen2"]

[[resources.reg]]
publish-labels = ["os"]
interface-type = "oci-registry"
resource-urn = "ghcr.io/o"
images = [{ name = "os" }, { name = "os-arm", arch = "arm64" }]

[[resources.acg]]
publish-labels = ["os"]
interface-type = "azure-compute-gallery"
resource-urn = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g"
images = [{ name = "any-gen1", hyperv-generation = "gen1" }, { name = "any-gen2", hyperv-generation = "gen2" }, { name = "x64", arch = "x86_64", hyperv-generation = "gen1" }]
`})
	tr, _ := mustLoad(t, filepath.Join(dir, "images.toml"))
	vs, ws := mustExpand(t, tr, Options{Strict: true})
	got := map[string][]string{}
	for _, v := range vs {
		for _, tg := range v.Targets {
			got[v.Key] = append(got[v.Key], tg.Name+"="+tg.ImageName)
		}
	}
	want := map[string][]string{
		"vm-x86_64-virtualization-gen2":  {"acg=any-gen2", "reg=os"},
		"vm-aarch64-virtualization-gen2": {"acg=any-gen2", "reg=os-arm"},
	}
	if !maps.EqualFunc(got, want, slices.Equal) || len(ws) != 0 {
		t.Errorf("targets = %v (warnings %v), want %v", got, ws, want)
	}
}
