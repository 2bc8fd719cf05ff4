package kiwi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ResultFileName is the portable result file KIWI writes into --target-dir
// (next to the pickled kiwi.result) since 2021, 9.24 included.
const ResultFileName = "kiwi.result.json"

// Result keys KIWI uses in kiwi.result.json.
const (
	KeyDiskImage       = "disk_image"        // oem: the raw disk
	KeyDiskFormatImage = "disk_format_image" // oem with format=: .vhdfixed, .qcow2, ...
	KeyInstallImage    = "installation_image"
	KeyInstallPXE      = "installation_pxe_archive"
	KeyKISArchive      = "kis_archive" // kis/pxe: tar.xz with kernel, initrd, rootfs, append
	KeyKISKernel       = "kis_kernel"  // kis with archive="false" (KIWI >= 10.3.8)
	KeyKISInitrd       = "kis_initrd"
	KeyKISRootfs       = "kis_rootfs"
	KeyKISAppend       = "kis_append"
	KeyFilesystemImage = "filesystem_image"
	KeyLiveImage       = "live_image"
	KeyRootArchive     = "root_archive"
	KeyContainer       = "container"
	KeyPackages        = "image_packages"
	KeyChanges         = "image_changes"
	KeyVerified        = "image_verified"
)

// Errors callers may check with errors.Is.
var (
	ErrNoResult  = errors.New("kiwi.result.json missing")
	ErrBadResult = errors.New("kiwi.result.json malformed")
	ErrNoDisk    = errors.New("KIWI result has no disk image")
)

// ResultFile is one entry of kiwi.result.json.
type ResultFile struct {
	Key          string
	Path         string // absolute, as KIWI wrote it
	Compress     bool   // KIWI would compress it when bundling
	Shasum       bool   // KIWI would checksum it when bundling
	UseForBundle bool
}

// Result is what a build produced, by meaning. Paths are empty when KIWI did
// not produce that file.
type Result struct {
	// Disk is the raw disk (disk_image).
	Disk string
	// DiskFormat is the disk converted to the description's format
	// (disk_format_image), e.g. a .vhdfixed or .qcow2.
	DiskFormat string
	// KISArchive is the kis tarball (kis_archive), holding kernel, initrd,
	// rootfs and append; see ExtractKIS.
	KISArchive string
	// Kernel, Initrd, Rootfs and Append are the separate kis files
	// (kis_kernel, ...), written by KIWI >= 10.3.8 with archive="false".
	Kernel, Initrd, Rootfs, Append string
	// Packages is the package list (image_packages).
	Packages string
	// Changes and Verified are KIWI's package changelog and verification
	// report.
	Changes, Verified string
	// Files holds every entry that names a file, by key, including the
	// ones above and keys this package does not know.
	Files map[string]ResultFile
}

// Keys returns the result keys in sorted order.
func (r *Result) Keys() []string {
	keys := make([]string, 0, len(r.Files))
	for k := range r.Files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseResult reads targetDir/kiwi.result.json and checks that every file it
// names exists. A result without a disk image is an error wrapping ErrNoDisk.
func ParseResult(targetDir string) (*Result, error) {
	path := filepath.Join(targetDir, ResultFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist; KIWI did not finish writing its results", ErrNoResult, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read KIWI result: %w", err)
	}
	res, err := DecodeResult(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range res.Keys() {
		f := res.Files[k]
		if !filepath.IsAbs(f.Path) {
			f.Path = filepath.Join(targetDir, f.Path)
			res.Files[k] = f
		}
		if _, err := os.Stat(f.Path); err != nil {
			return nil, fmt.Errorf("%s: %s names %s: %w", path, k, f.Path, err)
		}
	}
	res.fill()
	if res.Disk == "" {
		return nil, fmt.Errorf("%s: %w (key %q); it holds %s", path, ErrNoDisk, KeyDiskImage, describeKeys(res))
	}
	return res, nil
}

// DecodeResult decodes the JSON of kiwi.result.json. Entries without a
// filename (bundle_format: {pattern, tags}) are skipped. It does not look
// at the file system and does not require a disk.
func DecodeResult(data []byte) (*Result, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResult, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: expected a JSON object of result entries, found null", ErrBadResult)
	}
	res := &Result{Files: map[string]ResultFile{}}
	for key, msg := range raw {
		var e struct {
			Filename     *string `json:"filename"`
			Compress     bool    `json:"compress"`
			Shasum       bool    `json:"shasum"`
			UseForBundle bool    `json:"use_for_bundle"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%w: entry %q: %v", ErrBadResult, key, err)
		}
		if e.Filename == nil {
			continue // bundle_format and other non-file entries
		}
		if *e.Filename == "" {
			return nil, fmt.Errorf("%w: entry %q has an empty filename", ErrBadResult, key)
		}
		res.Files[key] = ResultFile{Key: key, Path: *e.Filename, Compress: e.Compress, Shasum: e.Shasum, UseForBundle: e.UseForBundle}
	}
	res.fill()
	return res, nil
}

func (r *Result) fill() {
	get := func(k string) string { return r.Files[k].Path }
	r.Disk = get(KeyDiskImage)
	r.DiskFormat = get(KeyDiskFormatImage)
	r.KISArchive = get(KeyKISArchive)
	r.Kernel = get(KeyKISKernel)
	r.Initrd = get(KeyKISInitrd)
	r.Rootfs = get(KeyKISRootfs)
	r.Append = get(KeyKISAppend)
	r.Packages = get(KeyPackages)
	r.Changes = get(KeyChanges)
	r.Verified = get(KeyVerified)
}

func describeKeys(r *Result) string {
	if len(r.Files) == 0 {
		return "no file entries"
	}
	parts := make([]string, 0, len(r.Files))
	for _, k := range r.Keys() {
		parts = append(parts, k+" ("+filepath.Base(r.Files[k].Path)+")")
	}
	return strings.Join(parts, ", ")
}
