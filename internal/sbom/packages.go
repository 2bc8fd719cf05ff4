// Package sbom makes the package list of an OS image as a software bill of
// materials: SPDX 2.3 JSON (the default) or CycloneDX 1.5 JSON. The list
// comes from KIWI's package list (NAME.packages) or from the image's own
// package database, read out of its root filesystem without mounting
// anything: dpkg's status file, or rpm's database queried by the host's rpm
// with --dbpath. Documents are reproducible: the creation time comes from
// the caller (SOURCE_DATE_EPOCH), the namespace and serial number from the
// content.
package sbom

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Package types.
const (
	TypeDeb = "deb"
	TypeRPM = "rpm"
)

// Package is one installed package.
type Package struct {
	Type string // TypeDeb or TypeRPM
	Name string
	// Version is the full version: dpkg's "[epoch:]upstream[-revision]",
	// rpm's "VERSION-RELEASE" (the epoch is in Epoch).
	Version string
	Epoch   string // rpm only; "" when none
	Arch    string // as the package manager names it (amd64, x86_64, noarch, ...)
	// Source is the source package's name and SourceVersion its version
	// when they differ from the binary's ("" when unknown or the same).
	Source, SourceVersion string
	License               string // as the package declares it; "" when unknown
	Supplier              string // maintainer or vendor; "" when unknown
}

// ErrNoDatabase: the image has no package database this package reads.
var ErrNoDatabase = errors.New("no package database")

// ParseDpkgStatus reads dpkg's status file (/var/lib/dpkg/status) and
// returns the installed packages, sorted by name and arch.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	var out []Package
	fields := map[string]string{}
	last := ""
	line := 0
	flush := func() error {
		defer clear(fields)
		if len(fields) == 0 {
			return nil
		}
		name := fields["Package"]
		if name == "" {
			return fmt.Errorf("dpkg status: stanza ending at line %d has no Package field", line)
		}
		// Status: want flag status; only "installed" packages are in the
		// image (not config-files, half-installed, ...).
		if st := strings.Fields(fields["Status"]); len(st) != 3 || st[2] != "installed" {
			return nil
		}
		p := Package{Type: TypeDeb, Name: name, Version: fields["Version"], Arch: fields["Architecture"], Supplier: fields["Maintainer"]}
		if p.Version == "" {
			return fmt.Errorf("dpkg status: package %s (stanza ending at line %d) has no Version", name, line)
		}
		// Source: name [(version)]
		if src := strings.TrimSpace(fields["Source"]); src != "" {
			n, v, _ := strings.Cut(src, " ")
			p.Source = n
			p.SourceVersion = strings.Trim(strings.TrimSpace(v), "()")
		}
		out = append(out, p)
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "":
			if err := flush(); err != nil {
				return nil, err
			}
			last = ""
		case l[0] == ' ' || l[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("dpkg status line %d: a continuation line without a field", line)
			}
			// Continuations (Description, Conffiles) are not needed.
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				return nil, fmt.Errorf("dpkg status line %d: %q is not a \"Field: value\" line", line, l)
			}
			last = k
			fields[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	sortPackages(out)
	return out, nil
}

// ParseKiwiList reads KIWI's package list (NAME.packages, the
// image_packages result): for rpm images
// `NAME|EPOCH|VERSION|RELEASE|ARCH|DISTURL|LICENSE`, for deb images
// `Package|None|Version|None|Architecture|None|None`
// (kiwi/system/setup.py, _export_rpm_package_list and
// _export_deb_package_list).
func ParseKiwiList(r io.Reader) ([]Package, error) {
	var out []Package
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) != 7 || f[0] == "" || f[2] == "" {
			return nil, fmt.Errorf("KIWI package list line %d: %q; expected NAME|EPOCH|VERSION|RELEASE|ARCH|DISTURL|LICENSE", line, l)
		}
		none := func(s string) string {
			if s == "None" || s == "(none)" {
				return ""
			}
			return s
		}
		p := Package{Name: f[0], Arch: none(f[4]), License: none(f[6])}
		if f[1] == "None" && f[3] == "None" { // dpkg-query's line; rpm writes (none)
			p.Type, p.Version = TypeDeb, f[2]
		} else {
			p.Type, p.Epoch, p.Version = TypeRPM, none(f[1]), f[2]+"-"+none(f[3])
			p.Version = strings.TrimSuffix(p.Version, "-")
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("KIWI package list: %w", err)
	}
	sortPackages(out)
	return out, nil
}

// rpmQueryFormat is what QueryRPM asks rpm for, one line per package.
const rpmQueryFormat = `%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{LICENSE}\t%{VENDOR}\n`

// parseRPMQuery reads rpm's output for rpmQueryFormat.
func parseRPMQuery(b []byte) ([]Package, error) {
	var out []Package
	for i, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 8 || f[0] == "" {
			return nil, fmt.Errorf("rpm query line %d: %q: expected 8 tab-separated fields", i+1, l)
		}
		none := func(s string) string {
			if s == "(none)" {
				return ""
			}
			return s
		}
		p := Package{Type: TypeRPM, Name: f[0], Epoch: none(f[1]), Version: f[2] + "-" + f[3], Arch: none(f[4]),
			License: none(f[6]), Supplier: none(f[7])}
		if src := none(f[5]); src != "" {
			// NAME-VERSION-RELEASE.src.rpm: name is all but the last two
			// dash-separated parts.
			nvr := strings.TrimSuffix(strings.TrimSuffix(src, ".rpm"), ".src")
			if parts := strings.Split(nvr, "-"); len(parts) >= 3 {
				p.Source = strings.Join(parts[:len(parts)-2], "-")
				p.SourceVersion = strings.Join(parts[len(parts)-2:], "-")
			}
		}
		out = append(out, p)
	}
	sortPackages(out)
	return out, nil
}

// sortPackages orders by name, then arch, then version: the order of every
// document, so the same packages give the same bytes.
func sortPackages(ps []Package) {
	slices.SortStableFunc(ps, func(a, b Package) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Arch, b.Arch), strings.Compare(a.Version, b.Version))
	})
}

// OSRelease is what /etc/os-release says of the image.
type OSRelease struct {
	ID, VersionID, PrettyName string
}

// ParseOSRelease reads an os-release file (KEY=value lines, values
// optionally quoted).
func ParseOSRelease(b []byte) OSRelease {
	var o OSRelease
	for _, l := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(strings.TrimSpace(string(l)), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			o.ID = v
		case "VERSION_ID":
			o.VersionID = v
		case "PRETTY_NAME":
			o.PrettyName = v
		}
	}
	return o
}
