package debmirror

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorFromDeb822PicksTheMainSuitesFirstURI(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"this machine's file", `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`, "http://deb.debian.org/debian"},
		{"security first", `Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security

Types: deb deb-src
URIs: https://mirror.example/debian/ https://other.example/debian
Suites: bookworm
`, "https://mirror.example/debian"},
		{"disabled and deb-src skipped", `Types: deb
URIs: http://off.example/debian
Suites: bookworm
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://on.example/debian
Suites: bookworm
`, "http://on.example/debian"},
		{"host only gets /debian", "Types: deb\nURIs: http://proxy.example:3142\nSuites: bookworm\n", "http://proxy.example:3142/debian"},
		{"snapshot path kept", "Types: deb\nURIs: http://snapshot.debian.org/archive/debian/20250520T000000Z/\nSuites: bookworm\n",
			"http://snapshot.debian.org/archive/debian/20250520T000000Z"},
		{"continuation lines", "Types: deb\nURIs:\n http://cont.example/debian\nSuites: bookworm\n", "http://cont.example/debian"},
		{"only updates suites", "Types: deb\nURIs: http://u.example/debian\nSuites: bookworm-updates\n", "http://u.example/debian"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MirrorFromDeb822([]byte(tt.in))
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := MirrorFromDeb822([]byte("Types: deb-src\nURIs: http://x\n")); err == nil {
		t.Error("no deb stanza accepted")
	}
	if _, err := MirrorFromDeb822([]byte("Types: deb\nURIs: not a url\nSuites: bookworm\n")); err == nil {
		t.Error("bad URI accepted")
	}
}

func TestMirrorFromSourcesListReadsOneLineStyle(t *testing.T) {
	in := `# comment
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian/ bookworm main
deb http://later.example/debian bookworm main
`
	got, err := MirrorFromSourcesList([]byte(in))
	if err != nil || got != "http://m.example/debian" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := MirrorFromSourcesList([]byte("# nothing\n")); err == nil {
		t.Error("empty list accepted")
	}
}

func TestURLFallsBackToSourcesList(t *testing.T) {
	oldS, oldL := debianSourcesPath, sourcesListPath
	t.Cleanup(func() { debianSourcesPath, sourcesListPath = oldS, oldL })
	dir := t.TempDir()
	debianSourcesPath = filepath.Join(dir, "debian.sources")
	sourcesListPath = filepath.Join(dir, "sources.list")

	if _, err := URL(); err == nil {
		t.Error("no files: want an error")
	}
	os.WriteFile(sourcesListPath, []byte("deb http://list.example/debian bookworm main\n"), 0o644)
	if got, err := URL(); err != nil || got != "http://list.example/debian" {
		t.Errorf("sources.list: %q, %v", got, err)
	}
	os.WriteFile(debianSourcesPath, []byte("Types: deb\nURIs: http://d822.example\nSuites: bookworm\n"), 0o644)
	if got, err := URL(); err != nil || got != "http://d822.example/debian" {
		t.Errorf("debian.sources: %q, %v", got, err)
	}
}
