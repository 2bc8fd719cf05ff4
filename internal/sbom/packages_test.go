package sbom

import (
	"slices"
	"strings"
	"testing"
)

const dpkgStatusText = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12988
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u9
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: removed-pkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Maintainer: Santiago Vila <sanvila@debian.org>
Version: 12.4+deb12u8
Conffiles:
 /etc/debian_version 8ac6b8b6cb8e0d2e9f1fd6f3a2b4c8b1

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 1:12.2.0-14
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
`

func TestDpkgStatusGivesInstalledPackagesWithTheirSourcePackages(t *testing.T) {
	ps, err := ParseDpkgStatus(strings.NewReader(dpkgStatusText))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypeDeb, Name: "base-files", Version: "12.4+deb12u8", Arch: "amd64", Supplier: "Santiago Vila <sanvila@debian.org>"},
		{Type: TypeDeb, Name: "libc6", Version: "2.36-9+deb12u9", Arch: "amd64", Source: "glibc", Supplier: "GNU Libc Maintainers <debian-glibc@lists.debian.org>"},
		{Type: TypeDeb, Name: "libgcc-s1", Version: "1:12.2.0-14", Arch: "amd64", Source: "gcc-12", SourceVersion: "12.2.0-14",
			Supplier: "Debian GCC Maintainers <debian-gcc@lists.debian.org>"},
	}
	if !slices.Equal(ps, want) {
		t.Fatalf("got  %+v\nwant %+v", ps, want)
	}
}

func TestBadDpkgStatusNamesTheLine(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"Package: a\nStatus: install ok installed\nVersion: 1\n\nnot a field\n", `line 5: "not a field"`},
		{" continuation\n", "line 1: a continuation line without a field"},
		{"Status: install ok installed\nVersion: 1\n\n", "stanza ending at line 3 has no Package"},
		{"Package: a\nStatus: install ok installed\n", "package a (stanza ending at line 2) has no Version"},
	} {
		if _, err := ParseDpkgStatus(strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestKiwiListReadsBothItsRPMAndItsDebLines(t *testing.T) {
	list := "bash|(none)|5.2.15|3.azl3|x86_64|(none)|GPL-3.0-or-later\n" +
		"shadow-utils|2|4.14.0|2.azl3|x86_64|obs://x|BSD-3-Clause AND GPL-2.0-or-later\n\n" +
		"apt|None|2.6.1|None|amd64|None|None\n"
	ps, err := ParseKiwiList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypeDeb, Name: "apt", Version: "2.6.1", Arch: "amd64"},
		{Type: TypeRPM, Name: "bash", Version: "5.2.15-3.azl3", Arch: "x86_64", License: "GPL-3.0-or-later"},
		{Type: TypeRPM, Name: "shadow-utils", Epoch: "2", Version: "4.14.0-2.azl3", Arch: "x86_64", License: "BSD-3-Clause AND GPL-2.0-or-later"},
	}
	if !slices.Equal(ps, want) {
		t.Fatalf("got  %+v\nwant %+v", ps, want)
	}
	if _, err := ParseKiwiList(strings.NewReader("bash|5.2|amd64\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a short line: %v", err)
	}
}

func TestRPMQueryOutputSplitsTheSourceRPMName(t *testing.T) {
	out := "kernel-core\t(none)\t6.6.1\t1.azl3\tx86_64\tkernel-6.6.1-1.azl3.src.rpm\tGPLv2\tMicrosoft Corporation\n" +
		"gpg-pubkey\t(none)\t3135ce90\t5e6fda74\t(none)\t(none)\tpubkey\t(none)\n"
	ps, err := parseRPMQuery([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypeRPM, Name: "gpg-pubkey", Version: "3135ce90-5e6fda74", License: "pubkey"},
		{Type: TypeRPM, Name: "kernel-core", Version: "6.6.1-1.azl3", Arch: "x86_64", Source: "kernel", SourceVersion: "6.6.1-1.azl3",
			License: "GPLv2", Supplier: "Microsoft Corporation"},
	}
	if !slices.Equal(ps, want) {
		t.Fatalf("got  %+v\nwant %+v", ps, want)
	}
	if _, err := parseRPMQuery([]byte(out + "a\tb\n")); err == nil || !strings.Contains(err.Error(), "rpm query line 3") {
		t.Fatalf("a third line with 2 fields: %v", err)
	}
}

func TestOSReleaseValuesAreUnquoted(t *testing.T) {
	o := ParseOSRelease([]byte("# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\n"))
	if o != (OSRelease{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"}) {
		t.Fatalf("%+v", o)
	}
}
