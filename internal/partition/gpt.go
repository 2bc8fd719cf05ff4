package partition

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"unicode/utf16"
)

const gptSignature = "EFI PART"

// Limits that keep a hostile header from making Read allocate or loop
// without bound; real tables have 128 entries of 128 bytes.
const (
	maxGPTEntries     = 4096
	maxGPTEntriesSize = 4 << 20
)

type gptHeader struct {
	myLBA, altLBA           uint64
	firstUsable, lastUsable uint64
	diskGUID                string
	entriesLBA              uint64
	numEntries, entrySize   uint32
	entriesCRC              uint32
}

// readGPT reads the primary GPT, falling back to the backup at the last
// sector when the primary fails its checks.
func readGPT(r io.ReaderAt, size, ss int64, noProtectiveMBR bool) (*Table, error) {
	t := &Table{Scheme: GPT, SectorSize: ss, DiskSize: size}
	if noProtectiveMBR {
		t.Warnings = append(t.Warnings, "sector 0 holds an MBR without a protective 0xEE entry (hybrid MBR); the GPT is used")
	}
	lastLBA := uint64(size/ss) - 1
	h, entries, perr := readGPTAt(r, size, ss, 1)
	if perr == nil {
		// Only warn about the backup: tools read the primary.
		if _, _, berr := readGPTAt(r, size, ss, h.altLBA); berr != nil {
			t.Warnings = append(t.Warnings, fmt.Sprintf("backup GPT header at LBA %d: %v", h.altLBA, berr))
		} else if h.altLBA != lastLBA {
			t.Warnings = append(t.Warnings, fmt.Sprintf("backup GPT header at LBA %d, not at the last LBA %d (disk grown or truncated?)", h.altLBA, lastLBA))
		}
	} else {
		var berr error
		h, entries, berr = readGPTAt(r, size, ss, lastLBA)
		if berr != nil {
			return nil, fmt.Errorf("%w: primary GPT header: %v; backup at LBA %d: %v", ErrCorrupt, perr, lastLBA, berr)
		}
		t.Warnings = append(t.Warnings, fmt.Sprintf("primary GPT header: %v; using the backup at LBA %d", perr, lastLBA))
	}
	t.DiskGUID = h.diskGUID
	for i := uint32(0); i < h.numEntries; i++ {
		e := entries[int(i)*int(h.entrySize):]
		if isZero(e[0:16]) {
			continue // unused entry
		}
		typ := guidString(e[0:16])
		first := binary.LittleEndian.Uint64(e[32:40])
		last := binary.LittleEndian.Uint64(e[40:48])
		if last < first {
			return nil, fmt.Errorf("%w: GPT entry %d ends (LBA %d) before it starts (LBA %d)", ErrCorrupt, i+1, last, first)
		}
		if last > lastLBA {
			return nil, fmt.Errorf("%w: GPT entry %d ends at LBA %d, beyond the disk's last LBA %d (truncated image?)", ErrCorrupt, i+1, last, lastLBA)
		}
		if first < h.firstUsable || last > h.lastUsable {
			t.Warnings = append(t.Warnings, fmt.Sprintf("GPT entry %d (LBA %d-%d) lies outside the usable LBAs %d-%d", i+1, first, last, h.firstUsable, h.lastUsable))
		}
		t.Partitions = append(t.Partitions, Partition{
			Number:     int(i) + 1,
			Start:      int64(first) * ss,
			Size:       int64(last-first+1) * ss,
			TypeGUID:   typ,
			GUID:       guidString(e[16:32]),
			Attributes: binary.LittleEndian.Uint64(e[48:56]),
			Name:       utf16Name(e[56:128]),
		})
	}
	t.Warnings = append(t.Warnings, overlaps(t.Partitions)...)
	return t, nil
}

// readGPTAt reads and checks the header at lba and its entry array.
func readGPTAt(r io.ReaderAt, size, ss int64, lba uint64) (gptHeader, []byte, error) {
	var h gptHeader
	if lba == 0 || lba > uint64(size/ss)-1 {
		return h, nil, fmt.Errorf("LBA %d is outside the disk", lba)
	}
	buf := make([]byte, ss)
	if _, err := r.ReadAt(buf, int64(lba)*ss); err != nil {
		return h, nil, fmt.Errorf("read: %v", err)
	}
	if string(buf[0:8]) != gptSignature {
		return h, nil, fmt.Errorf("no %q signature", gptSignature)
	}
	hsize := binary.LittleEndian.Uint32(buf[12:16])
	if hsize < 92 || int64(hsize) > ss {
		return h, nil, fmt.Errorf("header size %d out of range 92-%d", hsize, ss)
	}
	want := binary.LittleEndian.Uint32(buf[16:20])
	hb := append([]byte(nil), buf[:hsize]...)
	copy(hb[16:20], []byte{0, 0, 0, 0})
	if got := crc32.ChecksumIEEE(hb); got != want {
		return h, nil, fmt.Errorf("header CRC32 %08x, stored %08x", got, want)
	}
	h = gptHeader{
		myLBA:       binary.LittleEndian.Uint64(buf[24:32]),
		altLBA:      binary.LittleEndian.Uint64(buf[32:40]),
		firstUsable: binary.LittleEndian.Uint64(buf[40:48]),
		lastUsable:  binary.LittleEndian.Uint64(buf[48:56]),
		diskGUID:    guidString(buf[56:72]),
		entriesLBA:  binary.LittleEndian.Uint64(buf[72:80]),
		numEntries:  binary.LittleEndian.Uint32(buf[80:84]),
		entrySize:   binary.LittleEndian.Uint32(buf[84:88]),
		entriesCRC:  binary.LittleEndian.Uint32(buf[88:92]),
	}
	if h.myLBA != lba {
		return h, nil, fmt.Errorf("header says it is at LBA %d, found at LBA %d", h.myLBA, lba)
	}
	if h.entrySize < 128 || h.entrySize%8 != 0 {
		return h, nil, fmt.Errorf("entry size %d (want a multiple of 8, at least 128)", h.entrySize)
	}
	if h.numEntries > maxGPTEntries || int64(h.numEntries)*int64(h.entrySize) > maxGPTEntriesSize {
		return h, nil, fmt.Errorf("%d entries of %d bytes is more than this reader accepts", h.numEntries, h.entrySize)
	}
	n := int64(h.numEntries) * int64(h.entrySize)
	off := int64(h.entriesLBA) * ss
	if h.entriesLBA == 0 || h.entriesLBA > uint64(size/ss) || off+n > size {
		return h, nil, fmt.Errorf("entry array at LBA %d (%d bytes) lies outside the disk", h.entriesLBA, n)
	}
	entries := make([]byte, n)
	if _, err := r.ReadAt(entries, off); err != nil {
		return h, nil, fmt.Errorf("read entry array: %v", err)
	}
	if got := crc32.ChecksumIEEE(entries); got != h.entriesCRC {
		return h, nil, fmt.Errorf("entry array CRC32 %08x, stored %08x", got, h.entriesCRC)
	}
	return h, entries, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// guidString formats a GPT GUID in upper case: the first three fields are
// stored little endian, the rest as bytes.
func guidString(b []byte) string {
	const hexd = "0123456789ABCDEF"
	order := [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}
	out := make([]byte, 0, 36)
	for i, j := range order {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[b[j]>>4], hexd[b[j]&0xF])
	}
	return string(out)
}

// utf16Name decodes a GPT partition name (UTF-16LE, NUL padded).
func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// overlaps lists pairs of partitions that share bytes.
func overlaps(ps []Partition) []string {
	s := append([]Partition(nil), ps...)
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	var out []string
	for i := 1; i < len(s); i++ {
		if s[i].Start < s[i-1].End() && s[i-1].Kind() != KindExtended {
			out = append(out, fmt.Sprintf("partitions %d and %d overlap", s[i-1].Number, s[i].Number))
		}
	}
	return out
}
