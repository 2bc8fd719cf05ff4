package partition

import (
	"bytes"
	"testing"
)

func fuzzSeeds() [][]byte {
	gpt512 := buildGPT(512, 128, []gptPart{
		{typ: guidBytes(TypeBIOSBoot), first: 34, last: 40, name: "p.legacy"},
		{typ: guidBytes(TypeRootX86_64), first: 41, last: 90, name: "p.lxroot"},
		{typ: guidBytes(TypeLinuxFS), first: 91, last: 94},
	})
	gpt4k := buildGPT(4096, 16, []gptPart{{typ: guidBytes(TypeRootAArch64), first: 6, last: 10, name: "root"}})

	mbr := make([]byte, 64*512)
	mbr[510], mbr[511] = 0x55, 0xAA
	entry := func(b []byte, at int, status, typ byte, start, size uint32) {
		b[at] = status
		b[at+4] = typ
		le32(b[at+8:], start)
		le32(b[at+12:], size)
	}
	entry(mbr, 446, 0x80, 0x83, 1, 10)
	entry(mbr, 462, 0, 0x05, 20, 40)
	ebr := mbr[20*512:]
	ebr[510], ebr[511] = 0x55, 0xAA
	entry(ebr, 446, 0, 0x83, 1, 5)
	entry(ebr, 462, 0, 0x05, 10, 10)
	ebr2 := mbr[30*512:]
	ebr2[510], ebr2[511] = 0x55, 0xAA
	entry(ebr2, 446, 0, 0x82, 1, 5)

	ext := make([]byte, 4096)
	copy(ext[1024+56:], []byte{0x53, 0xEF})
	copy(ext[1024+120:], "ROOT")
	return [][]byte{gpt512, gpt4k, mbr, make([]byte, 1024), ext}
}

// FuzzRead feeds arbitrary disks to Read and FindRoot: they may fail, but
// must not panic, hang or report partitions outside the disk.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, disk []byte) {
		r := bytes.NewReader(disk)
		tab, err := Read(r, int64(len(disk)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.End() > int64(len(disk)) {
				t.Fatalf("partition outside the disk: %+v (disk %d bytes)", p, len(disk))
			}
			_ = p.String()
			_ = p.Kind().String()
		}
		_, _ = tab.FindRoot(r, "x86_64")
		_, _, _ = tab.FindBoot(r)
	})
}

// FuzzProbe feeds arbitrary superblocks to Probe.
func FuzzProbe(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := Probe(bytes.NewReader(b), 0, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		_ = fs
	})
}

func TestFuzzSeedsParse(t *testing.T) {
	seeds := fuzzSeeds()
	for i, want := range []int{3, 1, 3} {
		tab, err := Read(bytes.NewReader(seeds[i]), int64(len(seeds[i])))
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if len(tab.Partitions) != want+boolInt(i == 2) {
			t.Errorf("seed %d: %d partitions: %v", i, len(tab.Partitions), tab.Partitions)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
