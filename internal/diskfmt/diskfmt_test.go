package diskfmt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// write makes a file of size bytes holding b at offset 0 and tail at
// size-512 (when given).
func write(t *testing.T, head []byte, size int64, tail []byte) string {
	t.Helper()
	chunks := map[int64][]byte{0: head}
	if tail != nil {
		chunks[size-512] = tail
	}
	return testutil.SparseFile(t, filepath.Join(t.TempDir(), "disk.img"), size, chunks)
}

func TestDetectTellsFormatsApartByTheirMagicNotTheirName(t *testing.T) {
	for _, tc := range []struct {
		name       string
		head, tail string
		size       int64
		want       string
	}{
		{"qcow2", "QFI\xfb\x00\x00\x00\x03", "", 1 << 20, QCOW2},
		{"vhdx", "vhdxfile", "", 1 << 20, VHDX},
		{"vmdk sparse extent", "KDMV", "", 1 << 20, VMDK},
		{"vmdk descriptor", "# Disk DescriptorFile\nversion=1\n", "", 100, VMDK},
		{"dynamic vhd (footer copy first)", "conectix", "", 1 << 20, VPC},
		{"fixed vhd (footer last)", "\xeb\x63\x90", "conectix", 1<<20 + 512, VPC},
		{"fixed vhd of one sector and a footer", "\xeb\x63\x90", "conectix", 1024, VPC},
		{"raw with a boot sector", "\xeb\x63\x90", "", 1 << 20, Raw},
		{"raw holding the cookie elsewhere", "\xeb\x63\x90", "xconectix", 1 << 20, Raw},
		{"raw shorter than a sector", "tiny", "", 4, Raw},
		{"empty", "", "", 0, Raw},
		{"qcow2 magic cut short", "QFI", "", 3, Raw},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tail []byte
			if tc.tail != "" {
				tail = []byte(tc.tail)
			}
			p := write(t, []byte(tc.head), tc.size, tail)
			got, err := Detect(p)
			if err != nil || got != tc.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDetectFixedVHDLooksAtTheLast512BytesOnly(t *testing.T) {
	// The cookie 513 bytes from the end is not a footer.
	size := int64(1 << 20)
	p := testutil.SparseFile(t, filepath.Join(t.TempDir(), "d.raw"), size, map[int64][]byte{size - 513: []byte("conectix")})
	if got, err := Detect(p); err != nil || got != Raw {
		t.Fatalf("Detect = %q, %v; want raw", got, err)
	}
	p = testutil.SparseFile(t, filepath.Join(t.TempDir(), "d.vhd"), size, map[int64][]byte{size - 512: []byte("conectix")})
	if got, err := Detect(p); err != nil || got != VPC {
		t.Fatalf("Detect = %q, %v; want vpc", got, err)
	}
}

func TestDetectRejectsWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Detect(dir); err == nil || !strings.Contains(err.Error(), dir+" is not a regular file") {
		t.Fatalf("directory: err = %v", err)
	}
	missing := filepath.Join(dir, "missing.img")
	if _, err := Detect(missing); !os.IsNotExist(err) {
		t.Fatalf("missing file: err = %v", err)
	}
}

func TestDetectFileReportsAReadError(t *testing.T) {
	// A file opened for writing only cannot be read.
	p := write(t, []byte("QFI\xfb"), 1<<20, nil)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := DetectFile(f); err == nil || !strings.Contains(err.Error(), "read "+p) {
		t.Fatalf("err = %v, want a read error naming %s", err, p)
	}
}
