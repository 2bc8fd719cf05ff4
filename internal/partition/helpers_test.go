package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// debianPackage names the Debian package of each host tool the tests run.
var debianPackage = map[string]string{
	"sgdisk": "gdisk", "sfdisk": "fdisk", "debugfs": "e2fsprogs",
	"mkfs.ext2": "e2fsprogs", "mkfs.ext3": "e2fsprogs", "mkfs.ext4": "e2fsprogs",
	"mkfs.vfat": "dosfstools", "mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs",
}

// need skips the test when a host tool is missing, and fails it under
// OSIMAGE_REQUIRE_TOOLS=1, naming the Debian package to install.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testutil.NeedTool(t, tool, debianPackage[tool])
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// emptyDisk makes a sparse file of size bytes.
func emptyDisk(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// sgdiskDisk makes a GPT disk image with sgdisk.
func sgdiskDisk(t testing.TB, size int64, args ...string) string {
	t.Helper()
	need(t, "sgdisk")
	p := emptyDisk(t, size)
	run(t, "sgdisk", append(args, p)...)
	return p
}

// sfdiskDisk makes an MBR disk image from an sfdisk script.
func sfdiskDisk(t testing.TB, size int64, script string) string {
	t.Helper()
	need(t, "sfdisk")
	p := emptyDisk(t, size)
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return p
}

// mkfsAt formats [off, off+size) of a disk image in place.
func mkfsAt(t testing.TB, disk string, off, size int64, mkfs string, args ...string) {
	t.Helper()
	need(t, mkfs)
	part := filepath.Join(t.TempDir(), "part.img")
	f, _ := os.Create(part)
	f.Truncate(size)
	f.Close()
	run(t, mkfs, append(args, part)...)
	run(t, "dd", "if="+part, "of="+disk, "bs=64K", "seek="+strconv.FormatInt(off, 10), "oflag=seek_bytes", "conv=notrunc,sparse", "status=none")
}

// gptPart is one entry for buildGPT.
type gptPart struct {
	typ, guid   [16]byte
	first, last uint64
	name        string
}

// guidBytes encodes "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" the GPT way.
func guidBytes(s string) [16]byte {
	var b [16]byte
	h := strings.ReplaceAll(s, "-", "")
	raw := make([]byte, 16)
	for i := 0; i < 16; i++ {
		var v byte
		for _, c := range h[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c-'a') + 10
			case c >= 'A' && c <= 'F':
				v |= byte(c-'A') + 10
			}
		}
		raw[i] = v
	}
	b[0], b[1], b[2], b[3] = raw[3], raw[2], raw[1], raw[0]
	b[4], b[5] = raw[5], raw[4]
	b[6], b[7] = raw[7], raw[6]
	copy(b[8:], raw[8:])
	return b
}

// buildGPT writes a GPT disk image in memory (protective MBR, primary and
// backup headers, 128 entries) for sector size ss.
func buildGPT(ss int64, sectors uint64, parts []gptPart) []byte {
	disk := make([]byte, int64(sectors)*ss)
	// Protective MBR.
	disk[446+4] = 0xEE
	binary.LittleEndian.PutUint32(disk[446+8:], 1)
	binary.LittleEndian.PutUint32(disk[446+12:], uint32(min(sectors-1, 0xFFFFFFFF)))
	disk[510], disk[511] = 0x55, 0xAA

	entries := make([]byte, 128*128)
	for i, p := range parts {
		e := entries[i*128:]
		copy(e[0:16], p.typ[:])
		copy(e[16:32], p.guid[:])
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		for j, c := range utf16.Encode([]rune(p.name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	entrySectors := uint64(len(entries)) / uint64(ss)
	if entrySectors == 0 {
		entrySectors = 1
	}
	last := sectors - 1
	header := func(my, alt, entriesLBA uint64) []byte {
		h := make([]byte, ss)
		copy(h, gptSignature)
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], 2+entrySectors)
		binary.LittleEndian.PutUint64(h[48:], last-1-entrySectors)
		g := guidBytes("11111111-2222-3333-4444-555555555555")
		copy(h[56:72], g[:])
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[80:], 128)
		binary.LittleEndian.PutUint32(h[84:], 128)
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(entries))
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	copy(disk[ss:], header(1, last, 2))
	copy(disk[2*ss:], entries)
	backupEntries := last - entrySectors
	copy(disk[int64(backupEntries)*ss:], entries)
	copy(disk[int64(last)*ss:], header(last, 1, backupEntries))
	return disk
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// putMBREntry writes an MBR partition entry (type, first sector, sectors)
// at byte at of disk.
func putMBREntry(disk []byte, at int, typ byte, start, size uint32) {
	disk[at+4] = typ
	le32(disk[at+8:], start)
	le32(disk[at+12:], size)
}

// readExpecting reads disk. With errWant it expects ErrCorrupt saying
// errWant and returns nil; otherwise it expects no error and exactly the
// one warning given ("" for none), and returns the table.
func readExpecting(t *testing.T, disk []byte, errWant, warning string) *Table {
	t.Helper()
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if errWant != "" {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), errWant) {
			t.Fatalf("err = %v, want ErrCorrupt saying %q", err, errWant)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	if warning != "" {
		want = []string{warning}
	}
	if !slices.Equal(tab.Warnings, want) {
		t.Errorf("warnings %q, want %q", tab.Warnings, want)
	}
	return tab
}
