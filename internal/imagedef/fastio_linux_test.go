//go:build linux

package imagedef

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestReadFileFastReadsWhatOSReadFileReads(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{0, 1, 1000, 8 << 10, 8<<10 + 1, 70 << 10, 200 << 10}
	for i, n := range sizes {
		os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), bytes.Repeat([]byte{byte('a' + i)}, n), 0o644)
	}
	root := openRoot(dir)
	if root < 0 {
		t.Fatal("cannot open the root")
	}
	defer closeRoot(root)
	var a fileArena
	var got [][]byte
	for i := range sizes {
		data, ok := readFileFast(root, strconv.Itoa(i), &a)
		if !ok {
			t.Fatalf("file %d: not read", i)
		}
		got = append(got, data)
	}
	// Appending to one file's bytes must not change the next one's.
	for i := range got {
		_ = append(got[i], 'X')
	}
	for i := range sizes {
		want, _ := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if !bytes.Equal(got[i], want) {
			t.Errorf("file %d: %d bytes, want %d", i, len(got[i]), len(want))
		}
	}
	for _, bad := range []string{"missing", "."} {
		if _, ok := readFileFast(root, bad, &a); ok {
			t.Errorf("%s: read, want a fallback to the os package", bad)
		}
	}
}

func TestReadDirFastListsWhatOSReadDirLists(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.toml"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("sub", filepath.Join(dir, "link"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644)
	big := filepath.Join(dir, "big") // more entries than one getdents64 call returns
	os.Mkdir(big, 0o755)
	for i := range 1500 {
		os.WriteFile(filepath.Join(big, strings.Repeat("n", 40)+strconv.Itoa(i)), nil, 0o644)
	}
	root := openRoot(dir)
	if root < 0 {
		t.Fatal("cannot open the root")
	}
	defer closeRoot(root)
	buf := make([]byte, 32<<10)
	for _, rel := range []string{".", "sub", "big"} {
		got, ok := readDirFast(root, rel, buf)
		if !ok {
			t.Fatalf("%s: not listed", rel)
		}
		des, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]dirEntry, len(des))
		for i, de := range des {
			want[i] = dirEntry{name: de.Name(), typ: de.Type()}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d entries %v..., want %d", rel, len(got), got[:min(3, len(got))], len(want))
		}
	}
	for _, bad := range []string{"missing", "f.toml"} {
		if _, ok := readDirFast(root, bad, buf); ok {
			t.Errorf("%s: listed, want a fallback to the os package", bad)
		}
	}
}
