package sbom

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
)

func testDocument() *Document {
	return &Document{
		Name:    "edge-x86_64-virtualization",
		OS:      OSRelease{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Source:  "dpkg status file (/var/lib/dpkg/status) in partition 2",
		Created: time.Unix(1764460800, 0),
		Tool:    "packer-plugin-osimage-0.1.0",
		Packages: []Package{
			{Type: TypeDeb, Name: "libgcc-s1", Version: "1:12.2.0-14", Arch: "amd64", Source: "gcc-12", SourceVersion: "12.2.0-14", Supplier: "Debian GCC Maintainers"},
			{Type: TypeDeb, Name: "libstdc++6", Version: "12.2.0-14~b1", Arch: "amd64"},
			{Type: TypeRPM, Name: "shadow-utils", Epoch: "2", Version: "4.14.0-2.azl3", Arch: "x86_64", License: "BSD-3-Clause AND GPL-2.0-or-later"},
			{Type: TypeRPM, Name: "oldstyle", Version: "1-1", Arch: "noarch", License: "GPLv2+"},
		},
	}
}

func TestPURLsFollowThePurlSpec(t *testing.T) {
	d := testDocument()
	want := []string{
		"pkg:deb/debian/libgcc-s1@1%3A12.2.0-14?arch=amd64&distro=debian-12",
		"pkg:deb/debian/libstdc++6@12.2.0-14~b1?arch=amd64&distro=debian-12",
		"pkg:rpm/debian/shadow-utils@4.14.0-2.azl3?arch=x86_64&distro=debian-12&epoch=2",
		"pkg:rpm/debian/oldstyle@1-1?arch=noarch&distro=debian-12",
	}
	for i, p := range d.Packages {
		if got := d.PURL(p); got != want[i] {
			t.Errorf("%s: %s, want %s", p.Name, got, want[i])
		}
	}
	if got := (&Document{}).PURL(Package{Type: TypeDeb, Name: "a", Version: "1"}); got != "pkg:deb/debian/a@1" {
		t.Errorf("without os-release: %s", got)
	}
}

// Read back with the SPDX project's own Go reader: every package, its
// purl, the OS package the document describes, licenses only where they
// are SPDX expressions.
func TestSPDXDocumentReadsBackWithTheSPDXTools(t *testing.T) {
	d := testDocument()
	b, err := d.Encode(FormatSPDX)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the SPDX tools cannot read it: %v\n%s", err, b)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.DocumentName != d.Name ||
		doc.CreationInfo.Created != "2025-11-30T00:00:00Z" || doc.CreationInfo.Creators[0].Creator != d.Tool {
		t.Fatalf("document header: %+v %+v", doc, doc.CreationInfo)
	}
	if len(doc.Packages) != 5 || doc.Packages[0].PrimaryPackagePurpose != "OPERATING-SYSTEM" || doc.Packages[0].PackageName != "debian" || doc.Packages[0].PackageVersion != "12" {
		t.Fatalf("packages: %d, first %+v", len(doc.Packages), doc.Packages[0])
	}
	describes, contains := 0, 0
	for _, r := range doc.Relationships {
		switch {
		case r.Relationship == "DESCRIBES" && r.RefA.ElementRefID == "DOCUMENT" && r.RefB.ElementRefID == doc.Packages[0].PackageSPDXIdentifier:
			describes++
		case r.Relationship == "CONTAINS" && r.RefA.ElementRefID == doc.Packages[0].PackageSPDXIdentifier:
			contains++
		}
	}
	if describes != 1 || contains != 4 {
		t.Fatalf("relationships: %d DESCRIBES the OS, %d CONTAINS from it; want 1 and 4", describes, contains)
	}
	ids := map[string]bool{}
	for i, p := range doc.Packages[1:] {
		want := d.Packages[i]
		if p.PackageName != want.Name || p.PackageVersion != want.Version || len(p.PackageExternalReferences) != 1 ||
			p.PackageExternalReferences[0].Locator != d.PURL(want) {
			t.Errorf("package %d: %+v", i, p)
		}
		if id := string(p.PackageSPDXIdentifier); ids[id] || !regexp.MustCompile(`^[A-Za-z0-9.-]+$`).MatchString(id) {
			t.Errorf("SPDX id %q repeated or not [A-Za-z0-9.-]+", id)
		} else {
			ids[id] = true
		}
	}
	if got := doc.Packages[3].PackageLicenseDeclared; got != "BSD-3-Clause AND GPL-2.0-or-later" {
		t.Errorf("an SPDX expression is the declared license, got %q", got)
	}
	if p := doc.Packages[4]; p.PackageLicenseDeclared != "NOASSERTION" || !strings.Contains(p.PackageLicenseComments, "GPLv2+") {
		t.Errorf("GPLv2+ is not an SPDX expression: declared %q, comment %q", p.PackageLicenseDeclared, p.PackageLicenseComments)
	}
	if p := doc.Packages[1]; p.PackageSourceInfo != "built from source package gcc-12 12.2.0-14" || p.PackageSupplier.Supplier != "Debian GCC Maintainers" ||
		p.PackageSPDXIdentifier != "Package-deb-1-libgcc-s1" {
		t.Errorf("source, supplier and id: %+v %+v %s", p.PackageSourceInfo, p.PackageSupplier, p.PackageSPDXIdentifier)
	}
	if p := doc.Packages[2]; p.PackageSupplier != nil || p.PackageSourceInfo != "" || p.PackageSPDXIdentifier != "Package-deb-2-libstdc-6" {
		t.Errorf("a package without source and supplier: %+v %+v %s", p.PackageSourceInfo, p.PackageSupplier, p.PackageSPDXIdentifier)
	}
}

// The same content gives the same bytes; another time or another package
// list another namespace.
func TestDocumentsAreReproducibleAndTheirNamespaceFollowsTheContent(t *testing.T) {
	for _, format := range Formats {
		a, _ := testDocument().Encode(format)
		b, _ := testDocument().Encode(format)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: two encodings of the same document differ", format)
		}
		later := testDocument()
		later.Created = later.Created.Add(time.Second)
		c, _ := later.Encode(format)
		fewer := testDocument()
		fewer.Packages = fewer.Packages[1:]
		e, _ := fewer.Encode(format)
		id := regexp.MustCompile(`"(documentNamespace|serialNumber)": "([^"]+)"`)
		ns := func(b []byte) string { return string(id.FindSubmatch(b)[2]) }
		if ns(a) == ns(c) || ns(a) == ns(e) {
			t.Errorf("%s: namespace %s does not change with the time (%s) or the packages (%s)", format, ns(a), ns(c), ns(e))
		}
	}
	if _, err := testDocument().Encode("spdx-tag-value"); err == nil || !strings.Contains(err.Error(), "spdx-json, cyclonedx-json") {
		t.Fatalf("an unknown format: %v", err)
	}
}

func TestCycloneDXDocumentReadsBackWithTheCycloneDXLibrary(t *testing.T) {
	d := testDocument()
	b, err := d.Encode(FormatCycloneDX)
	if err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_5 || !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(bom.SerialNumber) {
		t.Fatalf("spec %v, serial %s", bom.SpecVersion, bom.SerialNumber)
	}
	if bom.Metadata.Timestamp != "2025-11-30T00:00:00Z" || bom.Metadata.Component.Type != cdx.ComponentTypeOS || bom.Metadata.Component.Version != "12" {
		t.Fatalf("metadata %+v", bom.Metadata.Component)
	}
	var purls []string
	for _, c := range *bom.Components {
		purls = append(purls, c.PackageURL)
		if c.BOMRef != c.PackageURL {
			t.Errorf("%s: bom-ref %s", c.Name, c.BOMRef)
		}
	}
	for _, p := range d.Packages {
		if !slices.Contains(purls, d.PURL(p)) {
			t.Errorf("no component %s", d.PURL(p))
		}
	}
	if l := (*(*bom.Components)[2].Licenses)[0]; l.Expression != "BSD-3-Clause AND GPL-2.0-or-later" {
		t.Errorf("license of shadow-utils: %+v", l)
	}
	if l := (*(*bom.Components)[3].Licenses)[0]; l.License == nil || l.License.Name != "GPLv2+" {
		t.Errorf("license of oldstyle: %+v", l)
	}
	first, second := (*bom.Components)[0], (*bom.Components)[1]
	if first.Supplier == nil || first.Supplier.Name != "Debian GCC Maintainers" || first.Properties == nil || (*first.Properties)[0].Value != "gcc-12 12.2.0-14" {
		t.Errorf("supplier and source package: %+v %+v", first.Supplier, first.Properties)
	}
	if second.Supplier != nil || second.Properties != nil {
		t.Errorf("a component without supplier and source: %+v %+v", second.Supplier, second.Properties)
	}
	if deps := (*bom.Dependencies)[0]; deps.Ref != bom.Metadata.Component.BOMRef || len(*deps.Dependencies) != 4 {
		t.Errorf("dependencies %+v", deps)
	}
}

func TestMediaTypesAndExtensions(t *testing.T) {
	if MediaType(FormatSPDX) != "application/spdx+json" || MediaType(FormatCycloneDX) != "application/vnd.cyclonedx+json" ||
		Ext(FormatSPDX) != ".spdx.json" || Ext(FormatCycloneDX) != ".cdx.json" {
		t.Fatal("media types or extensions")
	}
}
