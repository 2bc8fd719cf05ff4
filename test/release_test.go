package test

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// TestReleaseSnapshotIsWhatPackerInstalls builds the release archive for
// this platform as `make release-snapshot` does, checks its name and
// checksum file, and installs the binary inside with the real packer.
func TestReleaseSnapshotIsWhatPackerInstalls(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./scripts/release", "-targets", "linux/amd64", "-out", out)
	cmd.Dir = env.Root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release: %v\n%s", err, b)
	}
	vb, _ := os.ReadFile(filepath.Join(env.Root, "version", "version.go"))
	version := regexp.MustCompile(`\bVersion = "([^"]+)"`).FindSubmatch(vb)[1]
	base := "packer-plugin-osimage_v" + string(version) + "_x5.0_linux_amd64"
	zipPath := filepath.Join(out, base+".zip")
	sums, err := os.ReadFile(filepath.Join(out, "packer-plugin-osimage_v"+string(version)+"_SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	zb, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(zb)
	if want := hex.EncodeToString(sum[:]) + "  " + base + ".zip\n"; string(sums) != want {
		t.Fatalf("SHA256SUMS = %q, want %q", sums, want)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != base {
		t.Fatalf("zip holds %v, want exactly %s", zr.File, base)
	}
	bin := filepath.Join(out, base)
	rc, _ := zr.File[0].Open()
	f, _ := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	io.Copy(f, rc)
	f.Close()
	rc.Close()
	desc, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Version    string `json:"version"`
		APIVersion string `json:"api_version"`
	}
	json.Unmarshal(desc, &d)
	if d.Version != string(version) || d.APIVersion != "x5.0" {
		t.Fatalf("describe = %s: want release version %s (no -dev) and x5.0", desc, version)
	}
	// Packer accepts it as a release: a fresh plugin directory, then list.
	pdir := t.TempDir()
	install := exec.Command(env.Packer, "plugins", "install", "--path", bin, acc.PluginSource)
	install.Env = append(os.Environ(), "PACKER_PLUGIN_PATH="+pdir, "CHECKPOINT_DISABLE=1")
	if b, err := install.CombinedOutput(); err != nil {
		t.Fatalf("packer plugins install: %v\n%s", err, b)
	}
	list := exec.Command(env.Packer, "plugins", "installed")
	list.Env = install.Env
	b, _ := list.CombinedOutput()
	if !strings.Contains(string(b), base) {
		t.Fatalf("packer plugins installed does not list %s:\n%s", base, b)
	}
}
