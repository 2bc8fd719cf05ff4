// Package partition reads GPT and MBR partition tables from disk images in
// pure Go, without loop devices or root, and picks the root partition.
//
// Read decides the scheme from the first sectors: a GPT header ("EFI PART"
// at LBA 1, for 512- or 4096-byte sectors) wins, whether or not a protective
// MBR is present; otherwise a valid MBR (0x55AA, boot flags 0x00/0x80) is
// read, with its extended partition's logical partitions numbered from 5 as
// Linux does. Sizes and offsets are in bytes.
package partition

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Scheme is the kind of partition table.
type Scheme string

// Schemes.
const (
	GPT Scheme = "gpt"
	MBR Scheme = "mbr"
)

// Errors callers may check with errors.Is.
var (
	// ErrNoTable: neither a GPT header nor an MBR signature.
	ErrNoTable = errors.New("no partition table")
	// ErrCorrupt: a table is there but fails its checks (CRC, bounds).
	ErrCorrupt = errors.New("corrupt partition table")
)

// Table is a parsed partition table.
type Table struct {
	Scheme     Scheme
	SectorSize int64 // logical sector size the table is written for
	DiskSize   int64 // bytes of the image

	// DiskGUID is the GPT disk GUID; DiskSignature the MBR disk signature.
	DiskGUID      string
	DiskSignature uint32

	// Partitions in table order (GPT entry order; MBR primaries 1-4, then
	// logicals from 5). Empty slots are left out.
	Partitions []Partition

	// Warnings are problems that did not stop parsing: a corrupt primary
	// GPT replaced by its backup, a missing backup header, overlaps.
	Warnings []string
}

// Partition is one table entry.
type Partition struct {
	// Number is the partition's number as Linux names it (sda1, loop0p1):
	// GPT entry index + 1, MBR slot 1-4, logical partitions 5 and up.
	Number int
	// Start and Size are in bytes.
	Start, Size int64

	// GPT fields.
	TypeGUID   string // upper case, e.g. C12A7328-F81F-11D2-BA4B-00A0C93EC93B
	GUID       string // unique partition GUID
	Name       string // partition name (PARTLABEL), e.g. KIWI's "p.lxroot"
	Attributes uint64

	// MBR fields.
	MBRType  byte // 0x83, 0xef, ...
	Bootable bool // active flag 0x80
	Logical  bool // inside the extended partition
}

// End is the first byte after the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Kind is what a partition's type says it holds.
func (p Partition) Kind() Kind {
	if p.TypeGUID != "" {
		if t, ok := gptTypes[p.TypeGUID]; ok {
			return t.kind
		}
		return KindOther
	}
	if t, ok := mbrTypes[p.MBRType]; ok {
		return t.kind
	}
	return KindOther
}

// TypeName is a human name of the partition type, with the raw type.
func (p Partition) TypeName() string {
	if p.TypeGUID != "" {
		if t, ok := gptTypes[p.TypeGUID]; ok {
			return t.name
		}
		return "unknown type " + p.TypeGUID
	}
	if t, ok := mbrTypes[p.MBRType]; ok {
		return fmt.Sprintf("%s (0x%02x)", t.name, p.MBRType)
	}
	return fmt.Sprintf("unknown type 0x%02x", p.MBRType)
}

// String describes the partition in one line.
func (p Partition) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s at %d, %d bytes", p.Number, p.TypeName(), p.Start, p.Size)
	if p.Name != "" {
		fmt.Fprintf(&b, ", name %q", p.Name)
	}
	if p.Bootable {
		b.WriteString(", bootable")
	}
	if p.Logical {
		b.WriteString(", logical")
	}
	return b.String()
}

// ByNumber returns the partition with the given number.
func (t *Table) ByNumber(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// ReadFile opens a raw disk image and reads its partition table.
func ReadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	t, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Read reads the partition table of a raw disk of size bytes.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < 512 {
		return nil, fmt.Errorf("%w: disk is %d bytes, smaller than one sector", ErrNoTable, size)
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read sector 0: %w", err)
	}
	hasMBR := mbr[510] == 0x55 && mbr[511] == 0xAA
	protective := false
	if hasMBR {
		for i := 0; i < 4; i++ {
			if mbr[446+16*i+4] == 0xEE {
				protective = true
			}
		}
	}
	for _, ss := range []int64{512, 4096} {
		if 2*ss > size {
			continue
		}
		sig := make([]byte, 8)
		if _, err := r.ReadAt(sig, ss); err != nil {
			continue
		}
		if string(sig) == gptSignature {
			return readGPT(r, size, ss, hasMBR && !protective)
		}
	}
	if protective {
		// The primary header is gone; the backup at the end may remain.
		for _, ss := range []int64{512, 4096} {
			if t, err := readGPT(r, size, ss, false); err == nil {
				return t, nil
			}
		}
		return nil, fmt.Errorf("%w: protective MBR (type 0xEE) but no valid GPT header at LBA 1 or at the end", ErrCorrupt)
	}
	if !hasMBR {
		return nil, fmt.Errorf("%w: no GPT header at LBA 1 and no MBR signature 0x55AA in sector 0", ErrNoTable)
	}
	return readMBR(r, size, mbr)
}
