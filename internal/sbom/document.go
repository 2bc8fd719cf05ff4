package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/github/go-spdx/v2/spdxexp"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Formats of Encode.
const (
	FormatSPDX      = "spdx-json"      // SPDX 2.3, JSON
	FormatCycloneDX = "cyclonedx-json" // CycloneDX 1.5, JSON
)

// Formats lists the accepted formats, the default first.
var Formats = []string{FormatSPDX, FormatCycloneDX}

// MediaType is the IANA media type of a format's documents (the OCI
// artifactType of an SBOM referrer).
func MediaType(format string) string {
	if format == FormatCycloneDX {
		return "application/vnd.cyclonedx+json"
	}
	return "application/spdx+json"
}

// Ext is the file name extension of a format's documents.
func Ext(format string) string {
	if format == FormatCycloneDX {
		return ".cdx.json"
	}
	return ".spdx.json"
}

// Document is the package list of one image.
type Document struct {
	// Name names the image (a variant key).
	Name string
	// OS is what the image's os-release says; its ID and VERSION_ID
	// qualify the package URLs (pkg:deb/debian/...?distro=debian-12).
	OS OSRelease
	// Source says where the list came from ("dpkg status file in
	// partition 2", "KIWI package list", ...); it goes into the document's
	// comment.
	Source string
	// Created is the creation time (from SOURCE_DATE_EPOCH for
	// reproducible documents); written in UTC to the second.
	Created time.Time
	// Tool names the creator, as "packer-plugin-osimage-0.1.0".
	Tool     string
	Packages []Package
}

// Encode writes the document in a format of Formats.
func (d *Document) Encode(format string) ([]byte, error) {
	switch format {
	case FormatSPDX, "":
		return d.spdx()
	case FormatCycloneDX:
		return d.cycloneDX()
	}
	return nil, fmt.Errorf("unknown SBOM format %q; expected one of: %s", format, strings.Join(Formats, ", "))
}

// contentID is the SHA-256 of what the document says (not of its
// encoding): the namespace and serial number are derived from it, so the
// same image and time give the same document, and another image another.
func (d *Document) contentID() string {
	b, _ := json.Marshal(struct {
		Name, Source, Tool string
		OS                 OSRelease
		Created            int64
		Packages           []Package
	}{d.Name, d.Source, d.Tool, d.OS, d.Created.Unix(), d.Packages})
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// PURL is the package URL of p (github.com/package-url/purl-spec: the deb
// and rpm types, namespace the distro's ID, qualifiers arch, epoch and
// distro).
func (d *Document) PURL(p Package) string {
	ns := d.OS.ID
	if ns == "" {
		ns = map[string]string{TypeDeb: "debian", TypeRPM: "unknown"}[p.Type]
	}
	q := url.Values{}
	if p.Arch != "" {
		q.Set("arch", p.Arch)
	}
	if p.Epoch != "" {
		q.Set("epoch", p.Epoch)
	}
	if d.OS.ID != "" && d.OS.VersionID != "" {
		q.Set("distro", d.OS.ID+"-"+d.OS.VersionID)
	}
	s := "pkg:" + p.Type + "/" + url.PathEscape(strings.ToLower(ns)) + "/" + url.PathEscape(p.Name) + "@" + url.QueryEscape(p.Version)
	if len(q) > 0 {
		s += "?" + q.Encode() // sorted keys, as the spec asks
	}
	return s
}

// license returns a package's declared license as an SPDX expression, or
// "" with the raw text when it is not one (rpm's "GPLv2+", Debian's
// unknown).
func license(raw string) (expr string, ok bool) {
	if raw == "" {
		return "", false
	}
	if valid, _ := spdxexp.ValidateLicenses([]string{raw}); !valid {
		return "", false
	}
	return raw, true
}

var idUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func (d *Document) osName() string {
	if d.OS.ID != "" {
		return d.OS.ID
	}
	return d.Name
}

func (d *Document) spdx() ([]byte, error) {
	id := d.contentID()
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      d.Name,
		DocumentNamespace: "https://github.com/osimage/packer-plugin-osimage/spdx/" + url.PathEscape(d.Name) + "-" + id[:32],
		DocumentComment:   "Packages of " + d.Name + " from the " + d.Source,
		CreationInfo: &spdx.CreationInfo{
			Created:  d.Created.UTC().Format(time.RFC3339),
			Creators: []common.Creator{{CreatorType: "Tool", Creator: d.Tool}},
		},
	}
	osID := common.ElementID("OperatingSystem")
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName: d.osName(), PackageSPDXIdentifier: osID, PackageVersion: d.OS.VersionID,
		PackageDownloadLocation: "NOASSERTION", PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION",
		PackageCopyrightText: "NOASSERTION", PrimaryPackagePurpose: "OPERATING-SYSTEM", PackageSummary: d.OS.PrettyName,
		PackageComment: "the image " + d.Name,
	})
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(osID)), Relationship: "DESCRIBES",
	})
	for i, p := range d.Packages {
		pid := common.ElementID(fmt.Sprintf("Package-%s-%d-%s", p.Type, i+1, strings.Trim(idUnsafe.ReplaceAllString(p.Name, "-"), "-")))
		sp := &spdx.Package{
			PackageName: p.Name, PackageSPDXIdentifier: pid, PackageVersion: p.Version,
			PackageDownloadLocation: "NOASSERTION", PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION",
			PackageCopyrightText: "NOASSERTION", PrimaryPackagePurpose: "LIBRARY",
			PackageExternalReferences: []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: d.PURL(p)}},
		}
		if expr, ok := license(p.License); ok {
			sp.PackageLicenseDeclared = expr
		} else if p.License != "" {
			sp.PackageLicenseComments = "declared by the package, not an SPDX expression: " + p.License
		}
		if p.Supplier != "" {
			sp.PackageSupplier = &common.Supplier{SupplierType: "Organization", Supplier: p.Supplier}
		}
		if p.Source != "" {
			sp.PackageSourceInfo = "built from source package " + p.Source
			if p.SourceVersion != "" {
				sp.PackageSourceInfo += " " + p.SourceVersion
			}
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(osID)), RefB: common.MakeDocElementID("", string(pid)), Relationship: "CONTAINS",
		})
	}
	var b bytes.Buffer
	if err := spdxjson.Write(doc, &b, spdxjson.Indent("  ")); err != nil {
		return nil, fmt.Errorf("SPDX: %w", err)
	}
	return b.Bytes(), nil
}

func (d *Document) cycloneDX() ([]byte, error) {
	id := d.contentID()
	bom := cdx.NewBOM()
	// A name-based serial number: urn:uuid with version 5 bits set.
	u := []byte(id[:32])
	u[12] = '5'
	u[16] = "89ab"[strings.IndexByte("0123456789abcdef", u[16])%4]
	bom.SerialNumber = fmt.Sprintf("urn:uuid:%s-%s-%s-%s-%s", u[0:8], u[8:12], u[12:16], u[16:20], u[20:32])
	osRef := "os:" + d.osName()
	bom.Metadata = &cdx.Metadata{
		Timestamp: d.Created.UTC().Format(time.RFC3339),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: d.Tool}}},
		Component: &cdx.Component{Type: cdx.ComponentTypeOS, BOMRef: osRef, Name: d.osName(), Version: d.OS.VersionID,
			Description: "the image " + d.Name + "; packages from the " + d.Source},
	}
	comps := make([]cdx.Component, 0, len(d.Packages))
	deps := make([]string, 0, len(d.Packages))
	for _, p := range d.Packages {
		purl := d.PURL(p)
		c := cdx.Component{Type: cdx.ComponentTypeLibrary, BOMRef: purl, Name: p.Name, Version: p.Version, PackageURL: purl}
		if expr, ok := license(p.License); ok {
			c.Licenses = &cdx.Licenses{{Expression: expr}}
		} else if p.License != "" {
			c.Licenses = &cdx.Licenses{{License: &cdx.License{Name: p.License}}}
		}
		if p.Supplier != "" {
			c.Supplier = &cdx.OrganizationalEntity{Name: p.Supplier}
		}
		if p.Source != "" {
			c.Properties = &[]cdx.Property{{Name: "osimage:source-package", Value: strings.TrimSpace(p.Source + " " + p.SourceVersion)}}
		}
		comps = append(comps, c)
		deps = append(deps, purl)
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: osRef, Dependencies: &deps}}
	var b bytes.Buffer
	enc := cdx.NewBOMEncoder(&b, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_5); err != nil {
		return nil, fmt.Errorf("CycloneDX: %w", err)
	}
	return b.Bytes(), nil
}
