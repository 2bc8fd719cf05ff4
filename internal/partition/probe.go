package partition

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Filesystem is what Probe recognised at the start of a partition.
type Filesystem struct {
	Type  string // ext2, ext3, ext4, xfs, btrfs, vfat, swap, squashfs, or "" if unknown
	Label string
	UUID  string
}

// Probe identifies the filesystem in [off, off+size) of r from its
// superblock: ext2/3/4, XFS, Btrfs, FAT, swap and squashfs. An unknown
// filesystem is not an error; Type is then empty.
func Probe(r io.ReaderAt, off, size int64) (Filesystem, error) {
	const need = 0x10000 + 4096 // far enough for btrfs's superblock at 64 KiB
	n := int64(need)
	if size < n {
		n = size
	}
	buf := make([]byte, n)
	m, err := r.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return Filesystem{}, fmt.Errorf("read superblock at byte %d: %w", off, err)
	}
	return probeBytes(buf[:m]), nil
}

func probeBytes(b []byte) Filesystem {
	has := func(at int, s string) bool { return len(b) >= at+len(s) && string(b[at:at+len(s)]) == s }
	str := func(at, n int) string {
		if len(b) < at+n {
			return ""
		}
		return strings.TrimRight(string(bytes.TrimRight(b[at:at+n], "\x00")), " ")
	}
	// ext2/3/4: superblock at 1024, magic 0xEF53 at +56.
	if len(b) >= 1024+264 && binary.LittleEndian.Uint16(b[1024+56:]) == 0xEF53 {
		sb := b[1024:]
		compat := binary.LittleEndian.Uint32(sb[92:])
		incompat := binary.LittleEndian.Uint32(sb[96:])
		typ := "ext2"
		switch {
		case incompat&(0x40|0x80|0x200|0x8000) != 0: // extents, 64bit, flex_bg, inline data
			typ = "ext4"
		case compat&0x4 != 0: // has_journal
			typ = "ext3"
		}
		return Filesystem{Type: typ, Label: str(1024+120, 16), UUID: uuidString(sb[104:120])}
	}
	if has(0, "XFSB") && len(b) >= 120 {
		return Filesystem{Type: "xfs", Label: str(108, 12), UUID: uuidString(b[32:48])}
	}
	if has(0x10000+64, "_BHRfS_M") && len(b) >= 0x10000+0x12b+256 {
		return Filesystem{Type: "btrfs", Label: str(0x10000+0x12b, 256), UUID: uuidString(b[0x10000+32 : 0x10000+48])}
	}
	if has(0, "hsqs") {
		return Filesystem{Type: "squashfs"}
	}
	if len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA {
		if has(82, "FAT32   ") {
			return Filesystem{Type: "vfat", Label: str(71, 11), UUID: fatSerial(b[67:71])}
		}
		if has(54, "FAT12   ") || has(54, "FAT16   ") || has(54, "FAT     ") {
			return Filesystem{Type: "vfat", Label: str(43, 11), UUID: fatSerial(b[39:43])}
		}
	}
	for _, page := range []int{4096, 8192, 16384, 65536} {
		if has(page-10, "SWAPSPACE2") || has(page-10, "SWAP-SPACE") {
			return Filesystem{Type: "swap", Label: str(1024+28, 16), UUID: uuidString(b[1024+12 : 1024+28])}
		}
	}
	return Filesystem{}
}

func uuidString(b []byte) string {
	if len(b) < 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func fatSerial(b []byte) string {
	return fmt.Sprintf("%04X-%04X", binary.LittleEndian.Uint16(b[2:4]), binary.LittleEndian.Uint16(b[0:2]))
}
