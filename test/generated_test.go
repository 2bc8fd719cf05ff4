package test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// generated reports whether a repository path is produced by go generate.
func generated(rel string) bool {
	return strings.HasSuffix(rel, ".hcl2spec.go") || strings.HasPrefix(rel, "docs-partials"+string(filepath.Separator)) ||
		strings.HasPrefix(rel, ".web-docs"+string(filepath.Separator)) && strings.HasSuffix(rel, "README.md")
}

// TestGeneratedCodeAndDocsAreCurrent regenerates the HCL2 specs and the docs
// partials in a copy of the repository and fails when they differ from the
// committed ones: a stale spec makes Packer panic at run time.
func TestGeneratedCodeAndDocsAreCurrent(t *testing.T) {
	t.Parallel()
	root := acc.Setup(t).Root
	sdc := filepath.Join(root, ".tools", "bin", "packer-sdc")
	if _, err := os.Stat(sdc); err != nil {
		sdc = testutil.NeedTool(t, "packer-sdc", "(none: run make tools)")
	}
	// packer-sdc finds the project root by a directory named packer-plugin-*.
	copyRoot := filepath.Join(t.TempDir(), "packer-plugin-osimage")
	want := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") && d.Name() != ".web-docs" || d.Name() == "node_modules" || d.Name() == "dist") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(copyRoot, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if generated(rel) {
			want[rel] = b
			return nil // the copy regenerates it from scratch
		}
		return os.WriteFile(filepath.Join(copyRoot, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "generate", "./...")
	cmd.Dir = copyRoot
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(sdc)+string(os.PathListSeparator)+os.Getenv("PATH"), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go generate: %v\n%s", err, out)
	}
	// The docs as `make generate` renders them into .web-docs.
	for _, args := range [][]string{
		{sdc, "renderdocs", "-src", "docs", "-partials", "docs-partials/", "-dst", ".docs/"},
		{"bash", "scripts/web-docs.sh"},
	} {
		c := exec.Command(args[0], args[1:]...)
		c.Dir = copyRoot
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	got := map[string][]byte{}
	filepath.WalkDir(copyRoot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == ".docs" {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(copyRoot, p)
			if generated(rel) {
				got[rel], _ = os.ReadFile(p)
			}
		}
		return nil
	})
	for rel, b := range got {
		if w, ok := want[rel]; !ok {
			t.Errorf("%s is generated but not committed: run make generate", rel)
		} else if !bytes.Equal(w, b) {
			t.Errorf("%s is stale: run make generate and commit the result", rel)
		}
	}
	for rel := range want {
		if _, ok := got[rel]; !ok {
			t.Errorf("%s is committed but no longer generated: remove it", rel)
		}
	}
	if len(got) == 0 {
		t.Fatal("go generate produced nothing; the check is broken")
	}
}
