package disk

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// description writes a minimal KIWI description directory.
func description(t *testing.T, file string) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, file), []byte("<image/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// someFile writes a small file to stand in for a source image.
func someFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.raw")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func prepare(t *testing.T, raw map[string]interface{}) (*Config, error) {
	t.Helper()
	if _, ok := raw["packer_build_name"]; !ok {
		raw["packer_build_name"] = "test"
	}
	var c Config
	_, err := c.Prepare(raw)
	return &c, err
}

func mustPrepare(t *testing.T, raw map[string]interface{}) *Config {
	t.Helper()
	c, err := prepare(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error lacks %q:\n%v", p, err)
		}
	}
}

func TestPrepareRejectsBothKiwiAndSourceImage(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{
		"source_image": someFile(t),
		"kiwi":         map[string]interface{}{"description": description(t, "config.xml")},
	})
	wantErr(t, err, "kiwi and source_image exclude each other")
}

func TestPrepareRejectsNeitherKiwiNorSourceImage(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{})
	wantErr(t, err, "no disk source", "kiwi {", "source_image")
}

func TestPrepareNormalisesVariantSpellingsLikeTheMatrix(t *testing.T) {
	c := mustPrepare(t, map[string]interface{}{
		"source_image":      someFile(t),
		"arch":              "amd64",
		"platform":          "Metal",
		"hyperv_generation": "gen2",
		"firmware":          "EFI",
	})
	got := []string{c.Arch, c.Platform, c.HyperVGeneration, c.Firmware}
	if want := []string{"x86_64", "baremetal", "V2", "uefi"}; !reflect.DeepEqual(got, want) {
		t.Errorf("variant = %v, want %v", got, want)
	}
	if !c.wantBootFiles() {
		t.Error("baremetal with boot_files auto does not want boot files")
	}
	c = mustPrepare(t, map[string]interface{}{"source_image": someFile(t), "arch": "arm64"})
	if c.Arch != "aarch64" || c.Firmware != "uefi" || c.Platform != "virtualization" || c.wantBootFiles() {
		t.Errorf("arm64 defaults: arch %s firmware %s platform %s boot files %v", c.Arch, c.Firmware, c.Platform, c.wantBootFiles())
	}
}

func TestPrepareDefaultsArchToTheHost(t *testing.T) {
	c := mustPrepare(t, map[string]interface{}{"source_image": someFile(t)})
	want := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if c.Arch != want || c.HyperVGeneration != "" {
		t.Errorf("arch %q (want %q), generation %q", c.Arch, want, c.HyperVGeneration)
	}
}

func TestPrepareRejectsBadVariantValues(t *testing.T) {
	cases := []struct {
		field, value, want string
	}{
		{"arch", "sparc", `arch = "sparc": unknown architecture; want x86_64 (or amd64, x64, x86-64), aarch64 (or arm64)`},
		{"platform", "cloud", `platform = "cloud": unknown platform; want virtualization`},
		{"hyperv_generation", "gen3", `hyperv_generation = "gen3": unknown Hyper-V generation; want V1 (or gen1`},
		{"firmware", "coreboot", `firmware = "coreboot": unknown firmware; want bios (or legacy), uefi (or efi)`},
		{"boot_files", "sometimes", `boot_files = "sometimes": want "auto", "always" or "never"`},
		{"key", "a/b", `key "a/b" cannot name a file`},
	}
	for _, tc := range cases {
		_, err := prepare(t, map[string]interface{}{"source_image": someFile(t), tc.field: tc.value})
		wantErr(t, err, tc.want)
	}
}

func TestPrepareRejectsFirmwareThatContradictsTheGeneration(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"source_image": someFile(t), "hyperv_generation": "V1", "firmware": "uefi"})
	wantErr(t, err, "hyperv_generation V1 cannot have firmware uefi (allowed: bios)")
	_, err = prepare(t, map[string]interface{}{"source_image": someFile(t), "arch": "aarch64", "hyperv_generation": "V1"})
	wantErr(t, err, "arch aarch64 cannot have hyperv_generation V1 (allowed: V2)")
	c := mustPrepare(t, map[string]interface{}{"source_image": someFile(t), "hyperv_generation": "1"})
	if c.Firmware != "bios" {
		t.Errorf("V1 implies bios, got %q", c.Firmware)
	}
}

func TestPrepareDefaultsOutputDirectoryAndDiskNameFromTheKey(t *testing.T) {
	c := mustPrepare(t, map[string]interface{}{"source_image": someFile(t), "packer_build_name": "vm"})
	wd, _ := os.Getwd()
	if c.OutputDirectory != filepath.Join(wd, "output-vm") || c.diskName != "vm.raw" || c.BootFiles != "auto" {
		t.Errorf("output %s, disk %s, boot_files %s", c.OutputDirectory, c.diskName, c.BootFiles)
	}
	c = mustPrepare(t, map[string]interface{}{"source_image": someFile(t), "key": "vm-base-x86_64-virtualization", "output_directory": "out"})
	if c.OutputDirectory != filepath.Join(wd, "out") || c.diskName != "vm-base-x86_64-virtualization.raw" {
		t.Errorf("output %s, disk %s", c.OutputDirectory, c.diskName)
	}
}

func TestPrepareAcceptsTheKiwiFileAsDescription(t *testing.T) {
	dir := description(t, "vm-base.kiwi")
	c := mustPrepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": filepath.Join(dir, "vm-base.kiwi")}})
	if c.Kiwi.Description != dir || c.kiwiFile != "vm-base.kiwi" {
		t.Errorf("description %s, kiwi file %q", c.Kiwi.Description, c.kiwiFile)
	}
	// config.xml is KIWI's default and needs no --kiwi-file.
	dir = description(t, "config.xml")
	c = mustPrepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": filepath.Join(dir, "config.xml")}})
	if c.Kiwi.Description != dir || c.kiwiFile != "" {
		t.Errorf("description %s, kiwi file %q", c.Kiwi.Description, c.kiwiFile)
	}
	// A directory with kiwi_file.
	dir = description(t, "other.kiwi")
	c = mustPrepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": dir, "kiwi_file": "other.kiwi"}})
	if c.kiwiFile != "other.kiwi" {
		t.Errorf("kiwi file %q", c.kiwiFile)
	}
}

func TestPrepareRejectsMissingOrEmptyDescriptions(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{}})
	wantErr(t, err, "kiwi.description is required")
	_, err = prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": "/nonexistent/desc"}})
	wantErr(t, err, "kiwi.description", "/nonexistent/desc")
	_, err = prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": t.TempDir()}})
	wantErr(t, err, "neither config.xml nor a *.kiwi file")
	dir := description(t, "a.kiwi")
	_, err = prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": filepath.Join(dir, "a.kiwi"), "kiwi_file": "b.kiwi"}})
	wantErr(t, err, `kiwi.kiwi_file is "b.kiwi"`)
}

func TestPrepareRejectsBadKiwiBlockValues(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{
		"description": description(t, "config.xml"),
		"profiles":    []string{"ok", "two words"},
		"packages":    []string{""},
		"repository":  []map[string]interface{}{{"source": "http://x/a,b"}},
		"set_repository": map[string]interface{}{
			"source": "http://mirror", "components": []string{"main contrib"},
		},
		"log_level": -1,
	}})
	wantErr(t, err, `kiwi.profiles[1] = "two words"`, `kiwi.packages[0] = ""`, "kiwi.repository[0]", "KIWI cannot take ','",
		"kiwi.set_repository", `component "main contrib"`, "kiwi.log_level = -1")
}

func TestPrepareRejectsAMissingSourceImageAndABadChecksum(t *testing.T) {
	_, err := prepare(t, map[string]interface{}{"source_image": "/nonexistent.raw"})
	wantErr(t, err, "source_image", "/nonexistent.raw")
	_, err = prepare(t, map[string]interface{}{"source_image": someFile(t), "source_image_checksum": "md5:abc"})
	wantErr(t, err, `unknown algorithm "md5"`)
	_, err = prepare(t, map[string]interface{}{"source_image": t.TempDir()})
	wantErr(t, err, "is not a regular file")
	_, err = prepare(t, map[string]interface{}{"kiwi": map[string]interface{}{"description": description(t, "config.xml")}, "source_image_checksum": "sha256:00"})
	wantErr(t, err, "source_image_checksum is set but source_image is not")
}

func TestKiwiOptionsPutEveryFieldOnKiwisCommandLine(t *testing.T) {
	desc := description(t, "vm.kiwi")
	rc := filepath.Join(t.TempDir(), "kiwi.yml")
	os.WriteFile(rc, []byte("{}"), 0o644)
	c := mustPrepare(t, map[string]interface{}{"kiwi": map[string]interface{}{
		"description":       filepath.Join(desc, "vm.kiwi"),
		"profiles":          []string{"vm-gen1", "LegacyBoot"},
		"type":              "oem",
		"target_arch":       "x86_64",
		"log_level":         10,
		"runtime_config":    rc,
		"extra_global_args": []string{"--debug"},
		"repository": []map[string]interface{}{
			{"source": "http://mirror/debian", "type": "apt-deb", "alias": "extra", "priority": 5,
				"components": []string{"main", "contrib"}, "distribution": "bookworm", "repo_gpgcheck": false},
			{"source": "dir:///srv/rpms", "type": "rpm-dir", "image_include": true, "package_gpgcheck": true,
				"signing_keys": []string{"file:///k1.asc", "file:///k2.asc"}},
		},
		"set_repository":   map[string]interface{}{"source": "http://local/debian"},
		"packages":         []string{"vim", "openssh-server"},
		"ignore_repos":     true,
		"extra_build_args": []string{"--clear-cache"},
	}})
	opts, err := c.kiwiOptions("/out/kiwi-target")
	if err != nil {
		t.Fatal(err)
	}
	args, err := opts.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--profile=vm-gen1", "--profile=LegacyBoot", "--type=oem", "--target-arch=x86_64", "--kiwi-file=vm.kiwi",
		"--loglevel=10", "--config=" + rc, "--debug",
		"system", "build", "--description=" + desc, "--target-dir=/out/kiwi-target",
		"--ignore-repos", "--set-repo=http://local/debian",
		"--add-repo=http://mirror/debian,apt-deb,extra,5,,,,main contrib,bookworm,false",
		"--add-repo=dir:///srv/rpms,rpm-dir,,,true,true,{file:///k1.asc;file:///k2.asc}",
		"--add-package=vim", "--add-package=openssh-server", "--clear-cache",
	}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("args:\n%s\nwant:\n%s", strings.Join(args, "\n"), strings.Join(want, "\n"))
	}
	if c.Kiwi.KiwiPath != "kiwi-ng" {
		t.Errorf("kiwi_path default %q", c.Kiwi.KiwiPath)
	}
}
