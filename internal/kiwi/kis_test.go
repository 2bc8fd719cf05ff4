package kiwi

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

type entry struct {
	name string
	data []byte
	typ  byte
}

// writeKIS writes a kis archive the way KIWI lays it out.
func writeKIS(t *testing.T, name string, entries []entry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: typ}
		if typ == tar.TypeSymlink {
			h.Size, h.Linkname = 0, "/etc/passwd"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(e.data)
		}
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(name, ".xz") {
		if _, err := exec.LookPath("xz"); err == nil { // much faster under -race
			cmd := exec.Command("xz", "-0", "-c")
			cmd.Stdin, cmd.Stdout = &buf, f
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			return p
		}
		xw, err := xz.NewWriter(f)
		if err != nil {
			t.Fatal(err)
		}
		xw.Write(buf.Bytes())
		xw.Close()
	} else {
		f.Write(buf.Bytes())
	}
	return p
}

// kisEntries lays out a kis archive with a rootfs of n MiB: data in the
// first and last MiB, zeros between (which become holes).
func kisEntries(n int) ([]entry, []byte) {
	const base = "pxe-test.x86_64-1.2.3"
	rootfs := make([]byte, n<<20)
	copy(rootfs, "ext4 superblock-ish")
	copy(rootfs[len(rootfs)-100:], "data at the end")
	sum := md5.Sum(rootfs)
	return []entry{
		{name: base + "-6.1.0-50-amd64.kernel", data: []byte("kernel bytes")},
		{name: base + ".md5", data: []byte(hex.EncodeToString(sum[:]) + " 1024 4096 0 0\n")},
		{name: base + ".initrd", data: []byte("initrd bytes")},
		{name: base, data: rootfs},
		{name: base + ".append", data: []byte("root=UUID=1234 console=ttyS0\n")},
	}, rootfs
}

func TestExtractKISSortsFilesByRole(t *testing.T) {
	entries, rootfs := kisEntries(3)
	archive := writeKIS(t, "pxe-test.x86_64-1.2.3.tar.xz", entries)
	dir := t.TempDir()
	k, err := ExtractKIS(context.Background(), archive, dir)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "pxe-test.x86_64-1.2.3")
	if k.Kernel != base+"-6.1.0-50-amd64.kernel" || k.Initrd != base+".initrd" || k.Rootfs != base || k.Append != base+".append" {
		t.Errorf("roles: %+v", k)
	}
	if k.KernelVersion != "6.1.0-50-amd64" || k.Cmdline != "root=UUID=1234 console=ttyS0" {
		t.Errorf("KernelVersion %q, Cmdline %q", k.KernelVersion, k.Cmdline)
	}
	got, err := os.ReadFile(k.Rootfs)
	if err != nil || !bytes.Equal(got, rootfs) {
		t.Fatalf("rootfs differs (%v)", err)
	}
	st, _ := os.Stat(k.Rootfs)
	if alloc := sparse.Allocated(st); alloc >= int64(len(rootfs)) {
		t.Errorf("rootfs allocates %d bytes of %d; zero blocks should be holes", alloc, len(rootfs))
	}
}

func TestExtractKISWorksWithAndWithoutTheXzCommand(t *testing.T) {
	entries, rootfs := kisEntries(1)
	archive := writeKIS(t, "k.tar.xz", entries)
	old := xzCommand
	t.Cleanup(func() { xzCommand = old })
	for _, cmd := range []string{"xz", "", "xz-not-installed"} {
		xzCommand = cmd
		k, err := ExtractKIS(context.Background(), archive, t.TempDir())
		if err != nil {
			t.Fatalf("xzCommand %q: %v", cmd, err)
		}
		if got, _ := os.ReadFile(k.Rootfs); !bytes.Equal(got, rootfs) {
			t.Errorf("xzCommand %q: rootfs differs", cmd)
		}
	}
}

func TestExtractKISReportsACorruptXzStream(t *testing.T) {
	entries, _ := kisEntries(1)
	archive := writeKIS(t, "k.tar.xz", entries)
	data, _ := os.ReadFile(archive)
	data[len(data)/2] ^= 0xff
	os.WriteFile(archive, data, 0o644)
	old := xzCommand
	t.Cleanup(func() { xzCommand = old })
	for _, cmd := range []string{"xz", ""} {
		xzCommand = cmd
		if _, err := ExtractKIS(context.Background(), archive, t.TempDir()); err == nil {
			t.Errorf("xzCommand %q: corrupt archive accepted", cmd)
		}
	}
}

func TestExtractKISReadsAPlainTar(t *testing.T) {
	entries, _ := kisEntries(1)
	archive := writeKIS(t, "x.tar", entries)
	if _, err := ExtractKIS(context.Background(), archive, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestExtractKISRejectsBadArchives(t *testing.T) {
	entries, _ := kisEntries(1)
	badSum := append([]entry(nil), entries...)
	badSum[1] = entry{name: badSum[1].name, data: []byte("00000000000000000000000000000000 1 2 3 4\n")}
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"md5 mismatch", badSum, "md5"},
		{"no kernel", entries[1:], "no kernel"},
		{"path traversal", append(entries, entry{name: "../evil", data: []byte("x")}), "not a plain file name"},
		{"subdirectory", append(entries, entry{name: "a/b", data: []byte("x")}), "not a plain file name"},
		{"symlink", append(entries, entry{name: "link", typ: tar.TypeSymlink}), "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := writeKIS(t, "k.tar", tt.entries)
			_, err := ExtractKIS(context.Background(), archive, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := ExtractKIS(context.Background(), filepath.Join(t.TempDir(), "none.tar.xz"), t.TempDir()); err == nil {
		t.Error("missing archive accepted")
	}
	junk := filepath.Join(t.TempDir(), "junk.tar.xz")
	os.WriteFile(junk, []byte("not xz"), 0o644)
	if _, err := ExtractKIS(context.Background(), junk, t.TempDir()); err == nil {
		t.Error("junk accepted")
	}
}

func TestClassifyKISTakesTheOnlyUnknownFileAsRootfsWithoutMD5(t *testing.T) {
	k, err := classifyKIS(map[string]string{"a.kernel": "/o/a.kernel", "a.initrd": "/o/a.initrd", "a": "/o/a"})
	if err != nil || k.Rootfs != "/o/a" {
		t.Fatalf("%+v, %v", k, err)
	}
	_, err = classifyKIS(map[string]string{"a.kernel": "/o/a.kernel", "a.initrd": "/o/a.initrd", "a": "/o/a", "b": "/o/b"})
	if err == nil || !strings.Contains(err.Error(), "rootfs") {
		t.Fatalf("two candidates: err = %v", err)
	}
}

func TestResultKISPrefersSeparateFilesAndExtractsTheArchiveOtherwise(t *testing.T) {
	ctx := context.Background()
	if k, err := (&Result{Disk: "d.raw"}).KIS(ctx, filepath.Join(t.TempDir(), "kis")); k != nil || err != nil {
		t.Errorf("no kis output: %+v, %v", k, err)
	}

	dir := t.TempDir()
	appendFile := filepath.Join(dir, "x.append")
	os.WriteFile(appendFile, []byte("root=UUID=abcd console=ttyS0\n"), 0o644)
	sep := &Result{Kernel: "k", Initrd: "i", Rootfs: "r", Append: appendFile, KISArchive: "unused.tar.xz"}
	k, err := sep.KIS(ctx, filepath.Join(dir, "kis"))
	if err != nil {
		t.Fatal(err)
	}
	if !sep.SeparateKIS() || k.Kernel != "k" || k.Initrd != "i" || k.Rootfs != "r" || k.Cmdline != "root=UUID=abcd console=ttyS0" {
		t.Errorf("separate files: %+v", k)
	}
	if _, err := os.Stat(filepath.Join(dir, "kis")); !os.IsNotExist(err) {
		t.Errorf("nothing to extract, but the directory was made: %v", err)
	}

	entries, _ := kisEntries(1)
	arc := &Result{KISArchive: writeKIS(t, "pxe-test.x86_64-1.2.3.tar.xz", entries), Kernel: "k"}
	out := filepath.Join(t.TempDir(), "kis")
	k, err = arc.KIS(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if arc.SeparateKIS() || filepath.Dir(k.Kernel) != out || k.Cmdline != "root=UUID=1234 console=ttyS0" {
		t.Errorf("archive: %+v", k)
	}
}
