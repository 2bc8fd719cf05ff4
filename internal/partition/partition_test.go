package partition

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

const MiB = 1 << 20

func TestReadGPTFromSgdisk(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 64*MiB,
		"-n1:2048:+1M", "-t1:ef02", "-c1:p.legacy",
		"-n2:0:+8M", "-t2:ef00", "-c2:p.UEFI",
		"-n3:0:+20M", "-t3:8304", "-c3:p.lxroot",
		"-n4:0:0", "-t4:8300", "-c4:data ünïcode",
		"-A3:set:2",
		"-U", "11111111-2222-3333-4444-555555555555",
	)
	tab, err := ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Scheme != GPT || tab.SectorSize != 512 || tab.DiskSize != 64*MiB {
		t.Errorf("table = %s, %d, %d", tab.Scheme, tab.SectorSize, tab.DiskSize)
	}
	if tab.DiskGUID != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("disk GUID %s", tab.DiskGUID)
	}
	if len(tab.Warnings) != 0 {
		t.Errorf("warnings: %q", tab.Warnings)
	}
	want := []struct {
		n           int
		start, size int64
		typ, name   string
		kind        Kind
	}{
		{1, MiB, MiB, TypeBIOSBoot, "p.legacy", KindBIOSBoot},
		{2, 2 * MiB, 8 * MiB, TypeESP, "p.UEFI", KindESP},
		{3, 10 * MiB, 20 * MiB, TypeRootX86_64, "p.lxroot", KindLinuxRoot},
		{4, 30 * MiB, 64*MiB - 30*MiB - 33*512, TypeLinuxFS, "data ünïcode", KindLinuxFS},
	}
	if len(tab.Partitions) != len(want) {
		t.Fatalf("%d partitions: %v", len(tab.Partitions), tab.Partitions)
	}
	for i, w := range want {
		p := tab.Partitions[i]
		if p.Number != w.n || p.Start != w.start || p.Size != w.size || p.TypeGUID != w.typ || p.Name != w.name || p.Kind() != w.kind {
			t.Errorf("partition %d = %+v (%s), want %+v", i, p, p.Kind(), w)
		}
	}
	if a := tab.Partitions[2].Attributes; a != 1<<2 {
		t.Errorf("attributes %x, want bit 2 (legacy BIOS bootable)", a)
	}
	// Cross-check the unique GUID with sgdisk's own view.
	info := run(t, "sgdisk", "-i3", disk)
	if !strings.Contains(info, "Partition unique GUID: "+tab.Partitions[2].GUID) {
		t.Errorf("unique GUID %s not in sgdisk -i3:\n%s", tab.Partitions[2].GUID, info)
	}
}

func TestReadGPTUsesTheBackupWhenThePrimaryIsCorrupt(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 16*MiB, "-n1:0:0", "-t1:8305")
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage!"), 512+24) // inside the header: CRC mismatch
	f.Close()
	tab, err := ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 1 || tab.Partitions[0].TypeGUID != TypeRootAArch64 {
		t.Fatalf("partitions %v", tab.Partitions)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "header CRC32") || !strings.Contains(tab.Warnings[0], "using the backup") {
		t.Errorf("warnings %q", tab.Warnings)
	}
}

func TestReadGPTFailsWhenBothHeadersAreCorrupt(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 16*MiB, "-n1:0:0")
	f, _ := os.OpenFile(disk, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, 2*512+40)     // primary entry array: entries CRC mismatch
	f.WriteAt([]byte{0xff}, 16*MiB-512+8) // backup header: header CRC mismatch
	f.Close()
	_, err := ReadFile(disk)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry array CRC32") || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadGPTRejectsATruncatedImage(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 32*MiB, "-n1:0:0")
	if err := os.Truncate(disk, 16*MiB); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(disk)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "beyond the disk") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadGPTWarnsAboutAMisplacedBackup(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 16*MiB, "-n1:0:0")
	if err := os.Truncate(disk, 32*MiB); err != nil { // grown, backup not moved
		t.Fatal(err)
	}
	tab, err := ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "not at the last LBA") {
		t.Errorf("warnings %q", tab.Warnings)
	}
}

func TestReadGPTWith4KSectors(t *testing.T) {
	t.Parallel()
	ss := int64(4096)
	disk := buildGPT(ss, 2048, []gptPart{
		{typ: guidBytes(TypeESP), guid: guidBytes("AAAAAAAA-0000-0000-0000-000000000001"), first: 256, last: 511, name: "esp"},
		{typ: guidBytes(TypeRootAArch64), guid: guidBytes("AAAAAAAA-0000-0000-0000-000000000002"), first: 512, last: 2000, name: "root"},
	})
	tab, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if err != nil {
		t.Fatal(err)
	}
	if tab.SectorSize != 4096 || len(tab.Partitions) != 2 || len(tab.Warnings) != 0 {
		t.Fatalf("table %+v", tab)
	}
	p := tab.Partitions[1]
	if p.Start != 512*4096 || p.Size != 1489*4096 || p.GUID != "AAAAAAAA-0000-0000-0000-000000000002" || p.Name != "root" {
		t.Errorf("partition %+v", p)
	}
}

func TestReadMBRWithExtendedAndLogicalPartitions(t *testing.T) {
	t.Parallel()
	disk := sfdiskDisk(t, 64*MiB, `label: dos
label-id: 0x12345678
start=2048, size=8M, type=ef
start=18432, size=16M, type=83, bootable
start=51200, type=5
size=4M, type=82
size=6M, type=83
`)
	tab, err := ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Scheme != MBR || tab.DiskSignature != 0x12345678 || len(tab.Warnings) != 0 {
		t.Errorf("table %s %x %q", tab.Scheme, tab.DiskSignature, tab.Warnings)
	}
	got := make([]string, len(tab.Partitions))
	for i, p := range tab.Partitions {
		got[i] = p.String()
	}
	want := []string{
		"#1 EFI system (0xef) at 1048576, 8388608 bytes",
		"#2 Linux (0x83) at 9437184, 16777216 bytes, bootable",
		"#3 Extended (0x05) at 26214400, 40894464 bytes",
		// sfdisk leaves 1 MiB (its alignment) before each logical partition.
		"#5 Linux swap (0x82) at 27262976, 4194304 bytes, logical",
		"#6 Linux (0x83) at 32505856, 6291456 bytes, logical",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("partitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if k := tab.Partitions[2].Kind(); k != KindExtended {
		t.Errorf("kind %s", k)
	}
}

func TestReadPrefersGPTBehindAProtectiveMBR(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 16*MiB, "-n1:0:0")
	data, _ := os.ReadFile(disk)
	if data[446+4] != 0xEE {
		t.Fatalf("sgdisk wrote no protective MBR: type 0x%02x", data[446+4])
	}
	tab, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil || tab.Scheme != GPT {
		t.Fatalf("%v %v", tab, err)
	}
	// Without the primary header, the protective MBR sends Read to the backup.
	copy(data[512:520], "XXXXXXXX")
	tab, err = Read(bytes.NewReader(data), int64(len(data)))
	if err != nil || tab.Scheme != GPT || len(tab.Warnings) != 1 {
		t.Fatalf("%+v %v", tab, err)
	}
}

func TestReadUsesTheGPTOfAHybridMBR(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 16*MiB, "-n1:0:+4M", "-n2:0:0", "-h1")
	tab, err := ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Scheme != GPT || len(tab.Partitions) != 2 || len(tab.Warnings) != 0 {
		t.Errorf("%+v", tab)
	}
	// An MBR without any 0xEE entry in front of a GPT: still the GPT, with
	// a warning.
	data, _ := os.ReadFile(disk)
	for i := 0; i < 4; i++ {
		if data[446+16*i+4] == 0xEE {
			data[446+16*i+4] = 0x83
		}
	}
	tab, err = Read(bytes.NewReader(data), int64(len(data)))
	if err != nil || tab.Scheme != GPT || len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "hybrid") {
		t.Errorf("%+v, %v", tab, err)
	}
}

func TestReadWithoutATable(t *testing.T) {
	t.Parallel()
	zero := make([]byte, 4*MiB)
	if _, err := Read(bytes.NewReader(zero), int64(len(zero))); !errors.Is(err, ErrNoTable) {
		t.Errorf("zeros: err = %v", err)
	}
	if _, err := Read(bytes.NewReader(zero[:100]), 100); !errors.Is(err, ErrNoTable) {
		t.Errorf("tiny: err = %v", err)
	}
	// A FAT boot sector has 0x55AA but code where the entries would be.
	fat := make([]byte, 1*MiB)
	for i := 446; i < 510; i++ {
		fat[i] = byte(i)
	}
	fat[510], fat[511] = 0x55, 0xAA
	if _, err := Read(bytes.NewReader(fat), int64(len(fat))); !errors.Is(err, ErrNoTable) || !strings.Contains(err.Error(), "boot flag") {
		t.Errorf("boot sector: err = %v", err)
	}
	if _, err := ReadFile("/nonexistent/disk.raw"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestReadMBRRejectsLoopsAndOverruns(t *testing.T) {
	t.Parallel()
	disk := make([]byte, 8*MiB)
	disk[510], disk[511] = 0x55, 0xAA
	putMBREntry(disk, 446, 0x05, 2048, 8192) // extended at sector 2048
	ebr := 2048 * 512
	disk[ebr+510], disk[ebr+511] = 0x55, 0xAA
	putMBREntry(disk, ebr+446, 0x83, 64, 1000)
	putMBREntry(disk, ebr+446+16, 0x05, 0, 100) // next EBR: itself
	_, err := Read(bytes.NewReader(disk), int64(len(disk)))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "loops") {
		t.Errorf("loop: err = %v", err)
	}

	putMBREntry(disk, ebr+446+16, 0, 0, 0)
	putMBREntry(disk, ebr+446, 0x83, 64, 100000) // beyond the extended partition
	_, err = Read(bytes.NewReader(disk), int64(len(disk)))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "outside the extended") {
		t.Errorf("overrun: err = %v", err)
	}

	putMBREntry(disk, 446, 0x83, 2048, 1<<30) // primary beyond the disk
	_, err = Read(bytes.NewReader(disk), int64(len(disk)))
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "beyond the disk") {
		t.Errorf("primary overrun: err = %v", err)
	}
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }

func TestRootTypeForNormalisesArchNames(t *testing.T) {
	t.Parallel()
	for arch, want := range map[string]string{
		"x86_64": TypeRootX86_64, "amd64": TypeRootX86_64, "x64": TypeRootX86_64,
		"aarch64": TypeRootAArch64, "arm64": TypeRootAArch64, "ARM64": TypeRootAArch64,
		"riscv64": TypeRootRISCV64, "i386": TypeRootX86, "sparc": "",
	} {
		if got := RootTypeFor(arch); got != want {
			t.Errorf("RootTypeFor(%q) = %q, want %q", arch, got, want)
		}
	}
}

// TestReadGPTEntryBounds: a one-sector entry and entries that start at the
// first usable LBA or end at the last usable LBA are read without a warning;
// one ending at the disk's last LBA (over the backup GPT) is read with a
// warning; one ending beyond the disk or before it starts is an error that
// names the entry by its number.
func TestReadGPTEntryBounds(t *testing.T) {
	t.Parallel()
	const sectors = 4096
	firstUsable, lastUsable := uint64(34), uint64(sectors-34) // buildGPT's, 512-byte sectors
	part := func(n int, first, last uint64) gptPart {
		return gptPart{typ: guidBytes(TypeLinuxFS), guid: guidBytes(fmt.Sprintf("BBBBBBBB-0000-0000-0000-%012d", n)), first: first, last: last}
	}
	for _, tc := range []struct {
		name    string
		second  gptPart
		warning string // "" for none
		err     string // "" for none
	}{
		{"ends at the last usable LBA", part(2, 100, lastUsable), "", ""},
		{"ends at the disk's last LBA", part(2, 100, sectors-1), fmt.Sprintf("GPT entry 2 (LBA 100-%d) lies outside the usable LBAs %d-%d", sectors-1, firstUsable, lastUsable), ""},
		{"ends beyond the disk", part(2, 100, sectors), "", fmt.Sprintf("GPT entry 2 ends at LBA %d, beyond the disk's last LBA %d", sectors, sectors-1)},
		{"ends before it starts", part(2, 100, 99), "", "GPT entry 2 ends (LBA 99) before it starts (LBA 100)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one := part(1, firstUsable, firstUsable) // one sector, at the first usable LBA
			tab := readExpecting(t, buildGPT(512, sectors, []gptPart{one, tc.second}), tc.err, tc.warning)
			if tab == nil {
				return
			}
			if len(tab.Partitions) != 2 || tab.Partitions[0].Start != 34*512 || tab.Partitions[0].Size != 512 ||
				tab.Partitions[1].Start != 100*512 || tab.Partitions[1].Size != int64(tc.second.last-99)*512 {
				t.Errorf("partitions %+v", tab.Partitions)
			}
		})
	}
}
