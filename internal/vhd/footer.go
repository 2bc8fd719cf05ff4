// Package vhd writes and reads the Virtual Hard Disk (VPC) format as Azure
// needs it: fixed disks only, a whole number of MiB of raw data followed by
// a 512-byte footer. It converts raw disks by copying their data extents or
// by appending the footer in place, and never imports Packer.
package vhd

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Sizes and limits.
const (
	FooterSize = 512
	// Align is the unit Azure requires the virtual size to be a multiple of.
	Align = 1 << 20
	// MaxSize is the largest virtual size written: the VHD format's and
	// qemu's limit (2040 GiB), below Azure's page blob and OS disk limits.
	MaxSize = 2040 << 30
	// MinRecommendedSize is Azure's smallest uploadable managed disk.
	MinRecommendedSize = 20 << 20
)

// Footer field values.
const (
	Cookie          = "conectix"
	FeaturesDefault = 0x00000002
	FormatVersion   = 0x00010000
	FixedDataOffset = 0xFFFFFFFFFFFFFFFF
	DiskTypeFixed   = 2
	DiskTypeDynamic = 3
	DiskTypeDiff    = 4
	// CreatorApp identifies this plugin as the writer.
	CreatorApp     = "osim"
	CreatorVersion = 0x00010000
	CreatorHostOS  = "Wi2k"
)

// Max geometry, as qemu-img writes it with -o force_size: it tells readers
// (qemu among them) to take the size from CurrentSize, not from CHS.
const (
	MaxCylinders = 65535
	MaxHeads     = 16
	MaxSectors   = 255
)

// vhdEpoch is the zero of the footer's timestamp: 2000-01-01 00:00:00 UTC.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrNotVHD means the bytes do not start with the VHD cookie.
var ErrNotVHD = errors.New("no VHD footer (cookie \"conectix\" not found)")

// Footer is the 512-byte VHD footer. All fields are big-endian on disk.
type Footer struct {
	Features        uint32
	FormatVersion   uint32
	DataOffset      uint64
	Timestamp       uint32 // seconds since 2000-01-01 UTC
	CreatorApp      [4]byte
	CreatorVersion  uint32
	CreatorHostOS   [4]byte
	OriginalSize    uint64
	CurrentSize     uint64
	Cylinders       uint16
	Heads           uint8
	SectorsPerTrack uint8
	DiskType        uint32
	Checksum        uint32 // as read; recomputed by Marshal
	UniqueID        [16]byte
	SavedState      uint8
}

// NewFixed returns the footer of a fixed disk of the given virtual size,
// with a random unique id and the given time as its timestamp.
func NewFixed(size int64, now time.Time) (Footer, error) {
	return newFixed(size, now, "")
}

// NewFixedFor is NewFixed with the unique id derived from identity (the
// content's identity, such as "sha256:<hex>" of the disk) instead of
// random: the same disk and time give the same footer. An empty identity
// gives a random id.
func NewFixedFor(size int64, now time.Time, identity string) (Footer, error) {
	return newFixed(size, now, identity)
}

// idNamespace is the RFC 4122 name-based namespace of content ids (a
// random v4 id fixed for this plugin).
var idNamespace = [16]byte{0x8c, 0x2f, 0x6b, 0x51, 0x3d, 0x0e, 0x4a, 0x7b, 0x9f, 0x12, 0x5e, 0xa4, 0x60, 0xc3, 0x17, 0xd9}

// ContentID is the RFC 4122 version 5 UUID of identity in the plugin's
// namespace.
func ContentID(identity string) [16]byte {
	h := sha1.New()
	h.Write(idNamespace[:])
	h.Write([]byte(identity))
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

func newFixed(size int64, now time.Time, identity string) (Footer, error) {
	if err := CheckSize(size); err != nil {
		return Footer{}, err
	}
	f := Footer{
		Features:        FeaturesDefault,
		FormatVersion:   FormatVersion,
		DataOffset:      FixedDataOffset,
		Timestamp:       Timestamp(now),
		CreatorVersion:  CreatorVersion,
		OriginalSize:    uint64(size),
		CurrentSize:     uint64(size),
		Cylinders:       MaxCylinders,
		Heads:           MaxHeads,
		SectorsPerTrack: MaxSectors,
		DiskType:        DiskTypeFixed,
	}
	copy(f.CreatorApp[:], CreatorApp)
	copy(f.CreatorHostOS[:], CreatorHostOS)
	if identity != "" {
		f.UniqueID = ContentID(identity)
		return f, nil
	}
	if _, err := rand.Read(f.UniqueID[:]); err != nil {
		return Footer{}, fmt.Errorf("unique id: %w", err)
	}
	f.UniqueID[6] = f.UniqueID[6]&0x0f | 0x40 // UUID version 4
	f.UniqueID[8] = f.UniqueID[8]&0x3f | 0x80 // RFC 4122 variant
	return f, nil
}

// CheckSize says whether size is a virtual size Azure accepts.
func CheckSize(size int64) error {
	switch {
	case size <= 0:
		return fmt.Errorf("virtual size %d: must be positive", size)
	case size%Align != 0:
		return fmt.Errorf("virtual size %d is not a whole number of MiB, as Azure requires", size)
	case size > MaxSize:
		return fmt.Errorf("virtual size %d bytes (%.1f GiB) exceeds the VHD limit of 2040 GiB", size, float64(size)/(1<<30))
	}
	return nil
}

// PaddedSize rounds size up to a whole MiB.
func PaddedSize(size int64) int64 { return (size + Align - 1) / Align * Align }

// Timestamp converts t to the footer's seconds since 2000-01-01 UTC.
func Timestamp(t time.Time) uint32 {
	d := t.Sub(vhdEpoch)
	if d < 0 {
		return 0
	}
	return uint32(d / time.Second)
}

// Time returns the footer's timestamp as a time.
func (f *Footer) Time() time.Time { return vhdEpoch.Add(time.Duration(f.Timestamp) * time.Second) }

// Marshal encodes the footer, computing its checksum.
func (f *Footer) Marshal() [FooterSize]byte {
	var b [FooterSize]byte
	copy(b[0:8], Cookie)
	be := binary.BigEndian
	be.PutUint32(b[8:], f.Features)
	be.PutUint32(b[12:], f.FormatVersion)
	be.PutUint64(b[16:], f.DataOffset)
	be.PutUint32(b[24:], f.Timestamp)
	copy(b[28:32], f.CreatorApp[:])
	be.PutUint32(b[32:], f.CreatorVersion)
	copy(b[36:40], f.CreatorHostOS[:])
	be.PutUint64(b[40:], f.OriginalSize)
	be.PutUint64(b[48:], f.CurrentSize)
	be.PutUint16(b[56:], f.Cylinders)
	b[58] = f.Heads
	b[59] = f.SectorsPerTrack
	be.PutUint32(b[60:], f.DiskType)
	copy(b[68:84], f.UniqueID[:])
	b[84] = f.SavedState
	sum := checksum(b[:])
	be.PutUint32(b[64:], sum)
	f.Checksum = sum
	return b
}

// checksum is the one's complement of the byte sum, bytes 64..67 counted as zero.
func checksum(b []byte) uint32 {
	var s uint32
	for i, c := range b {
		if i >= 64 && i < 68 {
			continue
		}
		s += uint32(c)
	}
	return ^s
}

// FooterError describes a footer that has the cookie but is not valid.
type FooterError struct {
	Field string
	Msg   string
}

func (e *FooterError) Error() string {
	return fmt.Sprintf("corrupt VHD footer: %s: %s", e.Field, e.Msg)
}

// Decode parses a footer. It accepts 512 bytes, or 511 (pre-2004 writers);
// it fails with ErrNotVHD when the cookie is absent and with *FooterError
// when the checksum or a field is wrong.
func Decode(b []byte) (Footer, error) {
	var f Footer
	if len(b) < 511 {
		return f, fmt.Errorf("VHD footer is %d bytes, want 512: %w", len(b), ErrNotVHD)
	}
	if !bytes.Equal(b[:8], []byte(Cookie)) {
		return f, ErrNotVHD
	}
	if len(b) == 511 {
		b = append(append([]byte{}, b...), 0)
	}
	b = b[:FooterSize]
	be := binary.BigEndian
	f.Features = be.Uint32(b[8:])
	f.FormatVersion = be.Uint32(b[12:])
	f.DataOffset = be.Uint64(b[16:])
	f.Timestamp = be.Uint32(b[24:])
	copy(f.CreatorApp[:], b[28:32])
	f.CreatorVersion = be.Uint32(b[32:])
	copy(f.CreatorHostOS[:], b[36:40])
	f.OriginalSize = be.Uint64(b[40:])
	f.CurrentSize = be.Uint64(b[48:])
	f.Cylinders = be.Uint16(b[56:])
	f.Heads = b[58]
	f.SectorsPerTrack = b[59]
	f.DiskType = be.Uint32(b[60:])
	f.Checksum = be.Uint32(b[64:])
	copy(f.UniqueID[:], b[68:84])
	f.SavedState = b[84]
	if want := checksum(b); want != f.Checksum {
		return f, &FooterError{"checksum", fmt.Sprintf("stored 0x%08x, computed 0x%08x", f.Checksum, want)}
	}
	if f.FormatVersion>>16 != 1 {
		return f, &FooterError{"format version", fmt.Sprintf("0x%08x, want major version 1", f.FormatVersion)}
	}
	switch f.DiskType {
	case DiskTypeFixed, DiskTypeDynamic, DiskTypeDiff:
	default:
		return f, &FooterError{"disk type", fmt.Sprintf("%d, want 2 (fixed), 3 (dynamic) or 4 (differencing)", f.DiskType)}
	}
	if f.DiskType == DiskTypeFixed && f.DataOffset != FixedDataOffset {
		return f, &FooterError{"data offset", fmt.Sprintf("0x%x on a fixed disk, want 0xFFFFFFFFFFFFFFFF", f.DataOffset)}
	}
	if f.CurrentSize > 1<<44 {
		return f, &FooterError{"current size", fmt.Sprintf("%d bytes is beyond any VHD", f.CurrentSize)}
	}
	return f, nil
}

// IsMaxGeometry reports whether the footer carries the maximal CHS.
func (f *Footer) IsMaxGeometry() bool {
	return f.Cylinders == MaxCylinders && f.Heads == MaxHeads && f.SectorsPerTrack == MaxSectors
}
