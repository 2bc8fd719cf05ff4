package vhd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// footerBytes is a valid fixed footer claiming size bytes of data (any
// size: CheckSize is not applied, as other writers do not apply it).
func footerBytes(t *testing.T, size int64, diskType uint32) []byte {
	t.Helper()
	f, err := NewFixed(1<<20, timeZero())
	if err != nil {
		t.Fatal(err)
	}
	f.CurrentSize, f.OriginalSize, f.DiskType = uint64(size), uint64(size), diskType
	if diskType != DiskTypeFixed {
		f.DataOffset = 512
	}
	b := f.Marshal()
	return b[:]
}

// vhdFile writes data followed by footer into a new file.
func vhdFile(t *testing.T, data, footer []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.vhd")
	if err := os.WriteFile(p, append(append([]byte{}, data...), footer...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func inspect(t *testing.T, p string) (int64, *Footer, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Inspect(f)
}

func TestInspectRejectsAFooterClaimingMoreDataThanTheFileHolds(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 4096)
	p := vhdFile(t, data, footerBytes(t, 4097, DiskTypeFixed))
	_, _, err := inspect(t, p)
	var fe *FooterError
	if !errors.As(err, &fe) || fe.Field != "current size" || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want a current size FooterError naming %s", err, p)
	}
	// Exactly the data before the footer is fine.
	p = vhdFile(t, data, footerBytes(t, 4096, DiskTypeFixed))
	if n, ft, err := inspect(t, p); err != nil || ft == nil || n != 4096 {
		t.Fatalf("Inspect = %d, %v, %v; want 4096 bytes of data and the footer", n, ft, err)
	}
	// Less data than the file holds: the rest is ignored.
	p = vhdFile(t, data, footerBytes(t, 1024, DiskTypeFixed))
	if n, ft, err := inspect(t, p); err != nil || ft == nil || n != 1024 {
		t.Fatalf("Inspect = %d, %v, %v; want 1024", n, ft, err)
	}
}

func TestInspectReadsASmallFileAsRaw(t *testing.T) {
	for _, size := range []int{1, 511, 512, 513} {
		p := filepath.Join(t.TempDir(), "small.raw")
		os.WriteFile(p, bytes.Repeat([]byte{9}, size), 0o644)
		if n, ft, err := inspect(t, p); err != nil || ft != nil || n != int64(size) {
			t.Errorf("%d bytes: Inspect = %d, %v, %v; want raw of %d bytes", size, n, ft, err, size)
		}
	}
}

func TestInspectTreatsAFixedFooterAtTheStartOnlyAsRawData(t *testing.T) {
	// A raw disk that happens to begin with a fixed footer (a VHD's copy)
	// but has none at its end is a raw disk.
	p := vhdFile(t, footerBytes(t, 1<<20, DiskTypeFixed), make([]byte, 4096))
	if n, ft, err := inspect(t, p); err != nil || ft != nil || n != 512+4096 {
		t.Fatalf("Inspect = %d, %v, %v; want raw", n, ft, err)
	}
}

func TestConvertRefusesDynamicAndDifferencingVHDsByName(t *testing.T) {
	for typ, name := range map[uint32]string{DiskTypeDynamic: "dynamic", DiskTypeDiff: "differencing"} {
		ft := footerBytes(t, 1<<20, typ)
		// Footer copy at the start, footer at the end: how they are laid out.
		for what, p := range map[string]string{
			"both":       vhdFile(t, append(append([]byte{}, ft...), make([]byte, 4096)...), ft),
			"start only": vhdFile(t, ft, make([]byte, 4096)),
		} {
			_, err := Convert(context.Background(), p, filepath.Join(t.TempDir(), "o.vhd"), Options{})
			if err == nil || !strings.Contains(err.Error(), "is a "+name+" VHD") {
				t.Errorf("%s footer (%s): err = %v, want it to say %s", name, what, err, name)
			}
		}
	}
}

func TestInspectRejectsWhatIsNotARegularFile(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, err := Inspect(f); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

func TestConvertChecksTheOutputPathBeforeWriting(t *testing.T) {
	src := rawDisk(t, 2<<20)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	for _, tc := range []struct{ name, dst, want string }{
		{"empty", "", "no output path"},
		{"parent is a file", filepath.Join(file, "o.vhd"), "is not a directory"},
		{"output is a directory", sub, "output " + sub + " is a directory"},
		{"output is a directory, forced", sub, "is a directory"},
	} {
		_, err := Convert(context.Background(), src, tc.dst, Options{Force: strings.HasSuffix(tc.name, "forced")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(sub); len(ents) != 0 {
		t.Errorf("something was written into %s: %v", sub, ents)
	}
	// The same file by another name is the input too.
	link := filepath.Join(dir, "link.raw")
	os.Symlink(src, link)
	if _, err := Convert(context.Background(), src, link, Options{Force: true}); err == nil || !strings.Contains(err.Error(), "is the input") {
		t.Errorf("symlink to the input: err = %v", err)
	}
}

func TestConvertStampsTheFooterWithOptionsNow(t *testing.T) {
	when := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	dst := filepath.Join(t.TempDir(), "o.vhd")
	if _, err := Convert(context.Background(), rawDisk(t, 2<<20), dst, Options{Now: func() time.Time { return when }}); err != nil {
		t.Fatal(err)
	}
	_, ft, err := inspect(t, dst)
	if err != nil || ft == nil || !ft.Time().Equal(when) {
		t.Fatalf("footer %+v, %v; want timestamp %v", ft, err, when)
	}
	if ft.UniqueID[6]>>4 != 4 || ft.UniqueID[8]>>6 != 2 {
		t.Errorf("unique id %x is not a version 4 UUID", ft.UniqueID)
	}
}

func TestTimestampBefore2000IsZero(t *testing.T) {
	if ts := Timestamp(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)); ts != 0 {
		t.Fatalf("Timestamp(1999) = %d, want 0", ts)
	}
	if ts := Timestamp(time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC)); ts != 1 {
		t.Fatalf("Timestamp(2000-01-01 00:00:01) = %d, want 1", ts)
	}
}

func TestDecodeRejectsASizeBeyondAnyVHD(t *testing.T) {
	f := fixedFooter(t)
	for size, ok := range map[uint64]bool{1 << 44: true, 1<<44 + 1: false} {
		f.CurrentSize = size
		b := f.Marshal()
		_, err := Decode(b[:])
		var fe *FooterError
		if ok != (err == nil) || (!ok && (!errors.As(err, &fe) || fe.Field != "current size")) {
			t.Errorf("current size %d: err = %v, want ok=%v", size, err, ok)
		}
	}
	if _, err := Decode(make([]byte, 510)); !errors.Is(err, ErrNotVHD) || !strings.Contains(err.Error(), "510 bytes") {
		t.Errorf("510 bytes: err = %v", err)
	}
}

func TestPassedThroughVHDIsHashedWhenAsked(t *testing.T) {
	data := bytes.Repeat([]byte("pass"), 1<<18) // 1 MiB
	p := vhdFile(t, data, footerBytes(t, 1<<20, DiskTypeFixed))
	whole, _ := os.ReadFile(p)
	sum := sha256.Sum256(whole)
	for name, conv := range map[string]func() (Result, error){
		"copy": func() (Result, error) {
			return Convert(context.Background(), p, filepath.Join(t.TempDir(), "o.vhd"), Options{SHA256: true})
		},
		"in place": func() (Result, error) { return ConvertInPlace(context.Background(), p, Options{SHA256: true}) },
	} {
		res, err := conv()
		if err != nil || !res.PassedThrough || res.SHA256 != hex.EncodeToString(sum[:]) || res.Path != p {
			t.Errorf("%s: %+v, %v; want passed through with the file's sha256", name, res, err)
		}
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, whole) {
		t.Error("a passed-through VHD changed")
	}
}

func TestConvertInPlaceRefootsAnUnalignedFixedVHD(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 1<<20+512)
	p := vhdFile(t, data, footerBytes(t, int64(len(data)), DiskTypeFixed))
	res, err := ConvertInPlace(context.Background(), p, Options{})
	if err != nil || res.PassedThrough || res.InputSize != int64(len(data)) || res.VirtualSize != 2<<20 {
		t.Fatalf("%+v, %v", res, err)
	}
	after, _ := os.ReadFile(p)
	if int64(len(after)) != 2<<20+FooterSize || !bytes.Equal(after[:len(data)], data) || !bytes.Equal(after[len(data):2<<20], make([]byte, 2<<20-len(data))) {
		t.Fatalf("re-footed file: %d bytes; the old footer must become zeros", len(after))
	}
	if n, ft, err := inspect(t, p); err != nil || ft == nil || n != 2<<20 {
		t.Fatalf("Inspect after = %d, %v, %v", n, ft, err)
	}
}
