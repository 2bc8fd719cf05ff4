package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

// setGPTHeader changes the GPT header at lba of a 512-byte-sector disk and
// recomputes its CRC32 over its (possibly changed) header size.
func setGPTHeader(disk []byte, lba int64, change func(h []byte)) {
	h := disk[lba*512 : lba*512+512]
	change(h)
	binary.LittleEndian.PutUint32(h[16:20], 0)
	binary.LittleEndian.PutUint32(h[16:20], crc32.ChecksumIEEE(h[:binary.LittleEndian.Uint32(h[12:16])]))
}

// setEntries points the primary header at n entries of size bytes from lba
// and sets their CRC32 from what the disk holds there.
func setEntries(disk []byte, lba int64, n, size uint32) {
	off := lba * 512
	crc := crc32.ChecksumIEEE(disk[off:min(off+int64(n)*int64(size), int64(len(disk)))])
	setGPTHeader(disk, 1, func(h []byte) {
		binary.LittleEndian.PutUint64(h[72:], uint64(lba))
		binary.LittleEndian.PutUint32(h[80:], n)
		binary.LittleEndian.PutUint32(h[84:], size)
		binary.LittleEndian.PutUint32(h[88:], crc)
	})
}

// TestGPTHeaderFieldsAtTheirLimits: header fields at the last value the
// reader accepts are read without a warning; one past it, the primary
// header is refused with a message saying which field, and the backup is
// used.
func TestGPTHeaderFieldsAtTheirLimits(t *testing.T) {
	t.Parallel()
	const name = "abcdefghijklmnopqrstuvwxyz0123456789" // 36 UTF-16 units: the whole name field, no NUL
	for _, tc := range []struct {
		name    string
		sectors uint64
		change  func(disk []byte, sectors int64)
		warning string // "" for none
	}{
		{"header size of a whole sector", 8192, func(d []byte, _ int64) {
			setGPTHeader(d, 1, func(h []byte) { binary.LittleEndian.PutUint32(h[12:], 512) })
		}, ""},
		{"backup header one past the last LBA", 8192, func(d []byte, s int64) {
			setGPTHeader(d, 1, func(h []byte) { binary.LittleEndian.PutUint64(h[32:], uint64(s)) })
		}, "backup GPT header at LBA 8192: LBA 8192 is outside the disk"},
		{"4096 entries", 8192, func(d []byte, _ int64) { setEntries(d, 2, 4096, 128) }, ""},
		{"4097 entries", 8192, func(d []byte, _ int64) { setEntries(d, 2, 4097, 128) },
			"primary GPT header: 4097 entries of 128 bytes is more than this reader accepts; using the backup at LBA 8191"},
		{"entry array of 4 MiB", 16384, func(d []byte, _ int64) { setEntries(d, 2, 4096, 1024) }, ""},
		{"entry array over 4 MiB", 16384, func(d []byte, _ int64) { setEntries(d, 2, 4096, 1032) },
			"primary GPT header: 4096 entries of 1032 bytes is more than this reader accepts; using the backup at LBA 16383"},
		{"entry array ending at the disk's end", 8192, func(d []byte, s int64) {
			// The array's copy overwrites the backup header (warned about).
			copy(d[(s-32)*512:], d[2*512:2*512+128*128])
			setEntries(d, s-32, 128, 128)
		}, "backup GPT header at LBA 8191: no \"EFI PART\" signature"},
		{"entry array at an LBA whose byte offset overflows", 8192, func(d []byte, _ int64) {
			setGPTHeader(d, 1, func(h []byte) { binary.LittleEndian.PutUint64(h[72:], 1<<62) })
		}, "primary GPT header: entry array at LBA 4611686018427387904 (16384 bytes) lies outside the disk; using the backup at LBA 8191"},
		{"entry array one sector past the disk's end", 8192, func(d []byte, s int64) { setEntries(d, s-31, 128, 128) },
			"primary GPT header: entry array at LBA 8161 (16384 bytes) lies outside the disk; using the backup at LBA 8191"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := buildGPT(512, tc.sectors, []gptPart{{typ: guidBytes(TypeLinuxFS), guid: guidBytes("CCCCCCCC-0000-0000-0000-000000000001"), first: 6000, last: 6099, name: name}})
			tc.change(disk, int64(tc.sectors))
			tab := readExpecting(t, disk, "", tc.warning)
			if len(tab.Partitions) != 1 || tab.Partitions[0].Start != 6000*512 || tab.Partitions[0].Name != name {
				t.Errorf("partitions %+v, want one at LBA 6000 named %s", tab.Partitions, name)
			}
		})
	}
}

// mbrWithLogical is an MBR disk with an extended partition holding n
// logical partitions of one sector, each after its own EBR.
func mbrWithLogical(n int) []byte {
	disk := make([]byte, 2048*512+(n+1)*2*512)
	disk[510], disk[511] = 0x55, 0xAA
	putMBREntry(disk, 446, 0x05, 2048, uint32(n+1)*2) // extended
	for k := range n {
		ebr := (2048 + 2*k) * 512
		disk[ebr+510], disk[ebr+511] = 0x55, 0xAA
		putMBREntry(disk, ebr+446, 0x83, 1, 1) // the sector after the EBR
		if k < n-1 {
			putMBREntry(disk, ebr+446+16, 0x05, uint32(2*(k+1)), 2) // next EBR, from the extended partition's start
		}
	}
	return disk
}

// TestReadMBRTakesUpTo256LogicalPartitions: a chain of exactly maxLogical
// logical partitions is read whole, numbered from 5; one more is refused.
func TestReadMBRTakesUpTo256LogicalPartitions(t *testing.T) {
	t.Parallel()
	disk := mbrWithLogical(maxLogical)
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tab.Partitions); n != 1+maxLogical || tab.Partitions[n-1].Number != 4+maxLogical || tab.Partitions[n-1].Start != int64(2048+2*(maxLogical-1)+1)*512 {
		t.Fatalf("%d partitions, last %+v; want the extended one and %d logical, the last numbered %d", n, tab.Partitions[n-1], maxLogical, 4+maxLogical)
	}
	disk = mbrWithLogical(maxLogical + 1)
	_, err = Read(bytes.NewReader(disk), int64(len(disk)))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d logical partitions", maxLogical)) {
		t.Errorf("%d logical partitions: err = %v", maxLogical+1, err)
	}
}

// TestReadMBRNamesTheEntryWithABadBootFlag: a boot flag other than 0x00 or
// 0x80 means sector 0 is not a partition table; the message names the entry.
func TestReadMBRNamesTheEntryWithABadBootFlag(t *testing.T) {
	t.Parallel()
	disk := make([]byte, 1<<20)
	disk[510], disk[511] = 0x55, 0xAA
	disk[446+4], disk[446+8], disk[446+12] = 0x83, 1, 100 // entry 1: fine
	disk[446+16] = 0x7f                                   // entry 2: not a boot flag
	_, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), "MBR entry 2 has boot flag 0x7f") {
		t.Errorf("err = %v, want ErrNoTable naming MBR entry 2 and its flag 0x7f", err)
	}
}

// TestReadMBRLogicalPartitionsAtTheExtendedPartitionsEnd: a logical
// partition ending on the extended partition's last sector and an EBR on
// that sector are inside it; an EBR one sector past it is not.
func TestReadMBRLogicalPartitionsAtTheExtendedPartitionsEnd(t *testing.T) {
	t.Parallel()
	// Extended partition: sectors 2048 up to 2048+extSize; EBR 1 at 2048
	// with a logical partition on 2049; nextEBR (relative sector, 0 for
	// none) holds an empty EBR ending the chain.
	build := func(extSize uint32, nextEBR uint32) []byte {
		disk := make([]byte, 4096*512)
		disk[510], disk[511] = 0x55, 0xAA
		putMBREntry(disk, 446, 0x05, 2048, extSize)
		ebr := 2048 * 512
		disk[ebr+510], disk[ebr+511] = 0x55, 0xAA
		putMBREntry(disk, ebr+446, 0x83, 1, 1)
		if nextEBR != 0 {
			putMBREntry(disk, ebr+446+16, 0x05, nextEBR, 1)
			at := (2048 + int(nextEBR)) * 512
			disk[at+510], disk[at+511] = 0x55, 0xAA
		}
		return disk
	}
	for _, tc := range []struct {
		name          string
		extSize, next uint32
		err           string // "" for none
	}{
		{"logical partition ending on the last sector", 2, 0, ""},
		{"EBR on the last sector", 3, 2, ""},
		{"EBR one sector past the end", 3, 3, "extended boot record at byte 1050112 lies outside the extended partition 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := build(tc.extSize, tc.next)
			tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
			if tc.err != "" {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrCorrupt saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.Partitions) != 2 || tab.Partitions[1].Number != 5 || tab.Partitions[1].Start != 2049*512 || tab.Partitions[1].Size != 512 {
				t.Errorf("partitions %+v, want the extended one and logical 5 on sector 2049", tab.Partitions)
			}
		})
	}
}

// TestReadADiskOfOneSector: a disk of exactly one sector is read (an MBR
// with no partitions); one byte less is no disk at all.
func TestReadADiskOfOneSector(t *testing.T) {
	t.Parallel()
	sector := make([]byte, 512)
	sector[510], sector[511] = 0x55, 0xAA
	tab, err := Read(bytes.NewReader(sector), 512)
	if err != nil || tab.Scheme != MBR || len(tab.Partitions) != 0 {
		t.Errorf("one sector: table %+v, err %v; want an empty MBR table", tab, err)
	}
	if _, err := Read(bytes.NewReader(sector[:511]), 511); !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), "disk is 511 bytes, smaller than one sector") {
		t.Errorf("511 bytes: err = %v", err)
	}
}

// TestProbeAtTheEdgesOfWhatItReads: superblocks that end exactly where the
// bytes Probe reads end are recognised (labels included); Probe never looks
// past the partition, and a file ending inside what it would read is not an
// error.
func TestProbeAtTheEdgesOfWhatItReads(t *testing.T) {
	t.Parallel()
	ext := make([]byte, 1024+264) // the least an ext superblock needs
	ext[1024+56], ext[1024+57] = 0x53, 0xEF
	copy(ext[1024+120:], "rootfs")
	xfs := make([]byte, 120)
	copy(xfs, "XFSB")
	copy(xfs[108:], "data")
	swap := make([]byte, 4096)
	copy(swap[4086:], "SWAPSPACE2")
	btrfsAfter := make([]byte, 0x10000+0x12b+256)
	copy(btrfsAfter[0x10000+64:], "_BHRfS_M")
	btrfs := slices.Clone(btrfsAfter) // label ends exactly at the end
	copy(btrfs[0x10000+32:], bytes.Repeat([]byte{0xb1}, 16))
	copy(btrfs[0x10000+0x12b:], "pool")
	copy(swap[1024+12:], bytes.Repeat([]byte{0x5a}, 16))
	copy(swap[1024+28:], "swap0")
	oldSwap := make([]byte, 4096)
	copy(oldSwap[4086:], "SWAP-SPACE")
	fat := make([]byte, 512)
	copy(fat[54:], "FAT16   ")
	copy(fat[39:], []byte{0x78, 0x56, 0x34, 0x12})
	copy(fat[43:], "EFI        ")
	fat[510], fat[511] = 0x55, 0xAA
	for _, tc := range []struct {
		name       string
		data       []byte
		size       int64 // of the partition
		typ, label string
		uuid       string
	}{
		{"ext superblock in exactly 1288 bytes", ext, int64(len(ext)), "ext2", "rootfs", "00000000-0000-0000-0000-000000000000"},
		{"xfs in exactly 120 bytes, label at the end", xfs, 120, "xfs", "data", "00000000-0000-0000-0000-000000000000"},
		{"swap signature ending at byte 4096", swap, 4096, "swap", "swap0", "5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a"},
		{"old-style swap signature ending at byte 4096", oldSwap, 4096, "swap", "", "00000000-0000-0000-0000-000000000000"},
		{"4095 bytes of zeros", make([]byte, 4095), 4095, "", "", ""},
		{"a btrfs superblock after a 4 KiB partition is not its", btrfsAfter, 4096, "", "", ""},
		{"btrfs with its label ending at the end", btrfs, int64(len(btrfs)), "btrfs", "pool", "b1b1b1b1-b1b1-b1b1-b1b1-b1b1b1b1b1b1"},
		{"btrfs one byte short of its label", btrfs[:len(btrfs)-1], int64(len(btrfs) - 1), "", "", ""},
		{"FAT16 boot sector of exactly 512 bytes", fat, 512, "vfat", "EFI", "1234-5678"},
		{"the file ends before what Probe reads", ext, 1 << 20, "ext2", "rootfs", "00000000-0000-0000-0000-000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := Probe(bytes.NewReader(tc.data), 0, tc.size)
			if err != nil || fs.Type != tc.typ || fs.Label != tc.label || fs.UUID != tc.uuid {
				t.Errorf("Probe = %+v, %v; want type %q label %q UUID %q", fs, err, tc.typ, tc.label, tc.uuid)
			}
		})
	}
}

// TestReadFindsTheProtectiveEntryInAnySlotAndGPTOnlyWhereItFits: a
// protective 0xEE entry in the MBR's second slot is protective (no hybrid
// warning); a GPT signature at LBA 1 of a 1 KiB disk is read as a (corrupt)
// GPT; one at byte 4096 of a disk too small for two 4 KiB sectors is not.
func TestReadFindsTheProtectiveEntryInAnySlotAndGPTOnlyWhereItFits(t *testing.T) {
	t.Parallel()
	disk := buildGPT(512, 4096, []gptPart{{typ: guidBytes(TypeLinuxFS), guid: guidBytes("DDDDDDDD-0000-0000-0000-000000000001"), first: 2048, last: 4000}})
	copy(disk[446+16:446+32], disk[446:446+16]) // the 0xEE entry moves to slot 2
	clear(disk[446 : 446+16])
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil || len(tab.Warnings) != 0 || len(tab.Partitions) != 1 {
		t.Errorf("0xEE in slot 2: table %+v, err %v; want one partition and no warning", tab, err)
	}

	small := make([]byte, 1024)
	copy(small[512:], gptSignature)
	if _, err := Read(bytes.NewReader(small), 1024); !errors.Is(err, ErrCorrupt) {
		t.Errorf("GPT signature at LBA 1 of 1 KiB: err = %v, want a corrupt GPT", err)
	}
	small4k := make([]byte, 8191)
	copy(small4k[4096:], gptSignature)
	if _, err := Read(bytes.NewReader(small4k), 8191); !errors.Is(err, ErrNoTable) {
		t.Errorf("GPT signature at byte 4096 of 8191: err = %v, want no table (two 4 KiB sectors do not fit)", err)
	}
}

// TestFindRootTakesTheFirstOfEqualLargestPartitions: with no root type,
// name or label to go by, the largest Linux filesystem partition is root;
// of two of the same size, the first on the disk.
func TestFindRootTakesTheFirstOfEqualLargestPartitions(t *testing.T) {
	t.Parallel()
	disk := buildGPT(512, 8192, []gptPart{
		{typ: guidBytes(TypeLinuxFS), guid: guidBytes("EEEEEEEE-0000-0000-0000-000000000001"), first: 2048, last: 4095},
		{typ: guidBytes(TypeLinuxFS), guid: guidBytes("EEEEEEEE-0000-0000-0000-000000000002"), first: 4096, last: 6143},
	})
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tab.FindRoot(nil, "x86_64")
	if err != nil || c.Partition.Number != 1 {
		t.Errorf("FindRoot = partition %d (%s), %v; want partition 1, the first of two of the same size", c.Partition.Number, c.Reason, err)
	}
}

// TestFindBootByNameTakesLinuxAndUntypedPartitionsOnly: a partition named
// "boot" is /boot when its type is a Linux filesystem or one this package
// does not know, never when it is an ESP.
func TestFindBootByNameTakesLinuxAndUntypedPartitionsOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, typ string
		found     bool
	}{
		{"linux filesystem", TypeLinuxFS, true},
		{"unknown type", "12345678-1234-1234-1234-123456789ABC", true},
		{"ESP", TypeESP, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := buildGPT(512, 8192, []gptPart{{typ: guidBytes(tc.typ), guid: guidBytes("FFFFFFFF-0000-0000-0000-000000000001"), first: 2048, last: 4095, name: "boot"}})
			tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
			if err != nil {
				t.Fatal(err)
			}
			c, ok, err := tab.FindBoot(nil)
			if err != nil || ok != tc.found || (ok && c.Partition.Number != 1) {
				t.Errorf("FindBoot = %+v, %v, %v; want found %v", c, ok, err, tc.found)
			}
		})
	}
}

// TestFindRootMentionsLVMOnlyWhenTheDiskHasIt: the no-root message adds the
// LVM hint for a disk with an LVM partition, and not for one without.
func TestFindRootMentionsLVMOnlyWhenTheDiskHasIt(t *testing.T) {
	t.Parallel()
	disk := buildGPT(512, 8192, []gptPart{{typ: guidBytes(TypeESP), guid: guidBytes("ABABABAB-0000-0000-0000-000000000001"), first: 2048, last: 4095}})
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tab.FindRoot(nil, "x86_64"); !errors.Is(err, ErrNoRoot) || strings.Contains(err.Error(), "LVM") {
		t.Errorf("err = %v, want ErrNoRoot without the LVM hint", err)
	}
}

// TestReadMBRNumbersLogicalPartitionsPastAnEmptyEBR: an EBR without a
// partition (left by a deleted one) takes no number: the logical partitions
// around it are 5 and 6.
func TestReadMBRNumbersLogicalPartitionsPastAnEmptyEBR(t *testing.T) {
	t.Parallel()
	disk := make([]byte, 4096*512)
	disk[510], disk[511] = 0x55, 0xAA
	putMBREntry(disk, 446, 0x05, 2048, 6)
	for k, logical := range []bool{true, false, true} { // EBRs at 2048, 2050, 2052
		ebr := (2048 + 2*k) * 512
		disk[ebr+510], disk[ebr+511] = 0x55, 0xAA
		if logical {
			putMBREntry(disk, ebr+446, 0x83, 1, 1)
		}
		if k < 2 {
			putMBREntry(disk, ebr+446+16, 0x05, uint32(2*(k+1)), 2)
		}
	}
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 3 || tab.Partitions[1].Number != 5 || tab.Partitions[2].Number != 6 || tab.Partitions[2].Start != 2053*512 {
		t.Errorf("partitions %+v, want the extended one, 5 on sector 2049 and 6 on sector 2053", tab.Partitions)
	}
}
