package kiwi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureTarget is the target directory the fixtures in testdata/results
// were written for; tests move them into a temporary one.
const fixtureTarget = "/var/tmp/kiwi-target"

// placeResult copies a fixture into a new target dir as kiwi.result.json,
// rewriting its paths, and creates every file it names unless skip says so.
func placeResult(t *testing.T, fixture string, skip ...string) (string, *Result) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "results", fixture))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data = []byte(strings.ReplaceAll(string(data), fixtureTarget, dir))
	if err := os.WriteFile(filepath.Join(dir, ResultFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := DecodeResult(data)
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range res.Files {
		if contains(skip, k) {
			continue
		}
		if err := os.WriteFile(f.Path, []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, res
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseResultReadsAnOEMBuildWithAFormatImage(t *testing.T) {
	dir, _ := placeResult(t, "oem-vhdfixed.json")
	res, err := ParseResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Disk":       filepath.Join(dir, "azl4-vm-base.x86_64-0.1.raw"),
		"DiskFormat": filepath.Join(dir, "azl4-vm-base.x86_64-0.1.vhdfixed"),
		"Packages":   filepath.Join(dir, "azl4-vm-base.x86_64-0.1.packages"),
		"Changes":    filepath.Join(dir, "azl4-vm-base.x86_64-0.1.changes"),
		"Verified":   filepath.Join(dir, "azl4-vm-base.x86_64-0.1.verified"),
		"Kernel":     "",
		"KISArchive": "",
	}
	got := map[string]string{
		"Disk": res.Disk, "DiskFormat": res.DiskFormat, "Packages": res.Packages, "Changes": res.Changes,
		"Verified": res.Verified, "Kernel": res.Kernel, "KISArchive": res.KISArchive,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if f := res.Files[KeyDiskImage]; !f.Compress || !f.Shasum || f.UseForBundle {
		t.Errorf("disk_image flags = %+v, want compress and shasum, not use_for_bundle", f)
	}
	if keys := strings.Join(res.Keys(), " "); keys != "disk_format_image disk_image image_changes image_packages image_verified" {
		t.Errorf("Keys() = %s", keys)
	}
}

// bookworm-oem.json is the kiwi.result.json of a real build of
// testdata/bookworm with Debian's kiwi 9.24.56.
func TestParseResultReadsARealKiwi924Result(t *testing.T) {
	dir, _ := placeResult(t, "bookworm-oem.json")
	res, err := ParseResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "osimage-test-bookworm.x86_64-0.0.1")
	if res.Disk != base+".raw" || res.Packages != base+".packages" || res.Changes != base+".changes" || res.Verified != base+".verified" {
		t.Errorf("%+v", res)
	}
	if res.DiskFormat != "" || res.KISArchive != "" || len(res.Files) != 4 {
		t.Errorf("unexpected entries: %v", res.Keys())
	}
}

func TestParseResultReadsSeparateKISFilesAndSkipsBundleFormat(t *testing.T) {
	dir, _ := placeResult(t, "oem-kis-files.json")
	res, err := ParseResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Files["bundle_format"]; ok {
		t.Error("bundle_format has no filename and must be skipped")
	}
	base := filepath.Join(dir, "azl4-baremetal.aarch64-4.0.0")
	for name, pair := range map[string][2]string{
		"Kernel": {res.Kernel, base + "-6.12.40-1.azl4.kernel"},
		"Initrd": {res.Initrd, base + ".initrd"},
		"Rootfs": {res.Rootfs, base},
		"Append": {res.Append, base + ".append"},
		"Disk":   {res.Disk, base + ".raw"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %q, want %q", name, pair[0], pair[1])
		}
	}
}

func TestDecodeResultReadsAKISArchiveBuildWithoutADisk(t *testing.T) {
	data, err := os.ReadFile("testdata/results/kis-archive.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := DecodeResult(data)
	if err != nil {
		t.Fatal(err)
	}
	if res.KISArchive != fixtureTarget+"/pxe-test.x86_64-1.2.3.tar.xz" || res.Disk != "" {
		t.Errorf("KISArchive = %q, Disk = %q", res.KISArchive, res.Disk)
	}
}

func TestParseResultWithoutADiskSaysWhatItHolds(t *testing.T) {
	dir, _ := placeResult(t, "kis-archive.json")
	_, err := ParseResult(dir)
	if !errors.Is(err, ErrNoDisk) {
		t.Fatalf("err = %v, want ErrNoDisk", err)
	}
	if !strings.Contains(err.Error(), "kis_archive (pxe-test.x86_64-1.2.3.tar.xz)") {
		t.Errorf("error should list the keys found: %v", err)
	}
}

func TestParseResultFailsWhenTheJSONIsMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := ParseResult(dir)
	if !errors.Is(err, ErrNoResult) || !strings.Contains(err.Error(), filepath.Join(dir, ResultFileName)) {
		t.Fatalf("err = %v, want ErrNoResult naming the path", err)
	}
}

func TestParseResultFailsWhenANamedFileIsMissing(t *testing.T) {
	dir, _ := placeResult(t, "oem-vhdfixed.json", KeyDiskImage)
	_, err := ParseResult(dir)
	if err == nil || !strings.Contains(err.Error(), "disk_image names") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a missing disk_image file", err)
	}
}

func TestDecodeResultRejectsMalformedJSON(t *testing.T) {
	for _, f := range []string{"truncated.json", "wrong-type.json", "not-an-object.json"} {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "results", f))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeResult(data); !errors.Is(err, ErrBadResult) {
				t.Fatalf("err = %v, want ErrBadResult", err)
			}
		})
	}
	if _, err := DecodeResult([]byte("null")); !errors.Is(err, ErrBadResult) {
		t.Errorf("null: err = %v, want ErrBadResult", err)
	}
	if _, err := DecodeResult([]byte(`{"disk_image": {"filename": ""}}`)); !errors.Is(err, ErrBadResult) {
		t.Errorf("empty filename: err = %v, want ErrBadResult", err)
	}
}

func TestParseResultResolvesRelativeFilenamesInTheTargetDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "d.raw"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, ResultFileName), []byte(`{"disk_image": {"filename": "d.raw"}}`), 0o644)
	res, err := ParseResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Disk != filepath.Join(dir, "d.raw") {
		t.Errorf("Disk = %q", res.Disk)
	}
}
