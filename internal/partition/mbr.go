package partition

import (
	"encoding/binary"
	"fmt"
	"io"
)

// mbrSectorSize is the sector size MBR offsets are read in. MBR on 4K-native
// disks exists but is rare for images; GPT detection handles 4096 itself.
const mbrSectorSize = 512

// maxLogical bounds the EBR chain walk (Linux allows far fewer).
const maxLogical = 256

type mbrEntry struct {
	status      byte
	typ         byte
	start, size uint32
}

func parseMBREntry(b []byte) mbrEntry {
	return mbrEntry{
		status: b[0],
		typ:    b[4],
		start:  binary.LittleEndian.Uint32(b[8:12]),
		size:   binary.LittleEndian.Uint32(b[12:16]),
	}
}

// readMBR reads the four primary entries of sector 0 and the logical
// partitions of an extended partition.
func readMBR(r io.ReaderAt, size int64, sector0 []byte) (*Table, error) {
	t := &Table{Scheme: MBR, SectorSize: mbrSectorSize, DiskSize: size,
		DiskSignature: binary.LittleEndian.Uint32(sector0[440:444])}
	var ext *Partition
	for i := 0; i < 4; i++ {
		e := parseMBREntry(sector0[446+16*i:])
		if e.status != 0x00 && e.status != 0x80 {
			// A boot sector (FAT, NTFS, ...) without a partition table has
			// code or data here, not a boot flag.
			return nil, fmt.Errorf("%w: MBR entry %d has boot flag 0x%02x (want 0x00 or 0x80); sector 0 is not a partition table",
				ErrNoTable, i+1, e.status)
		}
		if e.typ == 0 || e.size == 0 {
			continue
		}
		p := Partition{
			Number:   i + 1,
			Start:    int64(e.start) * mbrSectorSize,
			Size:     int64(e.size) * mbrSectorSize,
			MBRType:  e.typ,
			Bootable: e.status == 0x80,
		}
		if p.End() > size {
			return nil, fmt.Errorf("%w: MBR partition %d ends at byte %d, beyond the disk's %d bytes (truncated image?)", ErrCorrupt, p.Number, p.End(), size)
		}
		if p.Kind() == KindExtended {
			if ext != nil {
				return nil, fmt.Errorf("%w: MBR has two extended partitions (%d and %d)", ErrCorrupt, ext.Number, p.Number)
			}
			ext = &p
		}
		t.Partitions = append(t.Partitions, p)
	}
	if ext != nil {
		logical, err := readLogical(r, *ext)
		if err != nil {
			return nil, err
		}
		t.Partitions = append(t.Partitions, logical...)
	}
	t.Warnings = append(t.Warnings, overlaps(t.Partitions)...)
	return t, nil
}

// readLogical walks the chain of extended boot records. Each EBR's first
// entry is a logical partition relative to that EBR; its second entry
// points to the next EBR relative to the extended partition's start.
func readLogical(r io.ReaderAt, ext Partition) ([]Partition, error) {
	var out []Partition
	seen := map[int64]bool{}
	ebr := ext.Start
	buf := make([]byte, mbrSectorSize)
	for n := 5; ; n++ {
		if n-5 >= maxLogical {
			return nil, fmt.Errorf("%w: more than %d logical partitions in the extended partition", ErrCorrupt, maxLogical)
		}
		if seen[ebr] {
			return nil, fmt.Errorf("%w: extended boot record chain loops back to byte %d", ErrCorrupt, ebr)
		}
		seen[ebr] = true
		if ebr < ext.Start || ebr+mbrSectorSize > ext.End() {
			return nil, fmt.Errorf("%w: extended boot record at byte %d lies outside the extended partition %d", ErrCorrupt, ebr, ext.Number)
		}
		if _, err := r.ReadAt(buf, ebr); err != nil {
			return nil, fmt.Errorf("read extended boot record at byte %d: %w", ebr, err)
		}
		if buf[510] != 0x55 || buf[511] != 0xAA {
			if ebr == ext.Start {
				return out, nil // an empty extended partition
			}
			return nil, fmt.Errorf("%w: extended boot record at byte %d has no 0x55AA signature", ErrCorrupt, ebr)
		}
		e := parseMBREntry(buf[446:])
		if e.typ != 0 && e.size != 0 {
			p := Partition{
				Number:   n,
				Start:    ebr + int64(e.start)*mbrSectorSize,
				Size:     int64(e.size) * mbrSectorSize,
				MBRType:  e.typ,
				Bootable: e.status == 0x80,
				Logical:  true,
			}
			if p.Start < ext.Start || p.End() > ext.End() {
				return nil, fmt.Errorf("%w: logical partition %d (bytes %d-%d) lies outside the extended partition %d", ErrCorrupt, n, p.Start, p.End(), ext.Number)
			}
			out = append(out, p)
		} else {
			n-- // an empty EBR takes no number
		}
		next := parseMBREntry(buf[446+16:])
		if next.typ == 0 || next.size == 0 {
			return out, nil
		}
		ebr = ext.Start + int64(next.start)*mbrSectorSize
	}
}
