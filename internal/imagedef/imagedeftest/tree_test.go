package imagedeftest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/imagedef"
)

func TestWriteTreeWritesATreeOfTenVariantsPerImage(t *testing.T) {
	root, err := WriteTree(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	tr, _, err := imagedef.Load(root)
	if err != nil {
		t.Fatalf("the generated tree does not load: %v", err)
	}
	vs, _, err := imagedef.Expand(tr, imagedef.Options{})
	if err != nil || len(vs) != 30 {
		t.Fatalf("the generated tree of 3 images expands to %d variants (%v), want 30", len(vs), err)
	}
}

func TestWriteTreeReportsADirectoryItCannotWriteTo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteTree(file, 1); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("WriteTree into a regular file: %v, want an error naming it", err)
	}
	if _, err := WriteTree(filepath.Join(file, "sub"), 1); err == nil {
		t.Error("WriteTree under a regular file: no error")
	}
}
