package partition

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// openDisk opens a disk image for FindRoot's filesystem probes.
func openDisk(t *testing.T, path string) (*Table, *os.File) {
	t.Helper()
	tab, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return tab, f
}

func TestFindRootPrefersTheRootTypeOfTheArch(t *testing.T) {
	t.Parallel()
	// The big Linux partition would win rule 4; the root type wins first.
	disk := sgdiskDisk(t, 64*MiB, "-n1:0:+8M", "-t1:ef00", "-n2:0:+16M", "-t2:8304", "-n3:0:0", "-t3:8300")
	tab, f := openDisk(t, disk)
	for _, arch := range []string{"x86_64", "amd64", ""} {
		c, err := tab.FindRoot(f, arch)
		if err != nil {
			t.Fatal(err)
		}
		if c.Partition.Number != 2 || !strings.Contains(c.Reason, "GPT root type Linux root (x86-64)") {
			t.Errorf("arch %q: %d, %s", arch, c.Partition.Number, c.Reason)
		}
	}
}

func TestFindRootRejectsARootTypeForAnotherArch(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 32*MiB, "-n1:0:0", "-t1:8305")
	tab, f := openDisk(t, disk)
	_, err := tab.FindRoot(f, "x86_64")
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "partition 1 is Linux root (AArch64)") {
		t.Fatalf("err = %v", err)
	}
	if c, err := tab.FindRoot(f, "arm64"); err != nil || c.Partition.Number != 1 {
		t.Fatalf("arm64: %v %v", c, err)
	}
}

func TestFindRootByKiwisPartitionName(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 64*MiB, "-n1:0:+8M", "-t1:8300", "-c1:p.lxroot", "-n2:0:0", "-t2:8300", "-c2:p.spare")
	tab, f := openDisk(t, disk)
	c, err := tab.FindRoot(f, "x86_64")
	if err != nil || c.Partition.Number != 1 || c.Reason != `partition 1 is named "p.lxroot"` {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestFindRootByFilesystemLabelOnMBR(t *testing.T) {
	t.Parallel()
	disk := sfdiskDisk(t, 64*MiB, "label: dos\nstart=2048, size=40M, type=83\nstart=83968, type=83\n")
	mkfsAt(t, disk, 2048*512, 40*MiB, "mkfs.ext4", "-q", "-L", "data")
	mkfsAt(t, disk, 83968*512, 64*MiB-83968*512, "mkfs.ext4", "-q", "-L", "ROOT")
	tab, f := openDisk(t, disk)
	c, err := tab.FindRoot(f, "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if c.Partition.Number != 2 || c.Filesystem.Type != "ext4" || c.Filesystem.Label != "ROOT" || !strings.Contains(c.Reason, `labelled "ROOT"`) {
		t.Errorf("%+v", c)
	}
	// Without a reader, labels are unknown: the largest partition wins.
	c, err = tab.FindRoot(nil, "x86_64")
	if err != nil || c.Partition.Number != 1 || !strings.Contains(c.Reason, "largest") {
		t.Errorf("no reader: %+v %v", c, err)
	}
}

func TestFindRootFallsBackToTheLargestLinuxFilesystem(t *testing.T) {
	t.Parallel()
	// KIWI's BIOS layout: one 0x83 partition from sector 2048.
	disk := sfdiskDisk(t, 64*MiB, "label: dos\nstart=2048, size=8M, type=83\nstart=18432, size=30M, type=83, bootable\nstart=79872, type=82\n")
	mkfsAt(t, disk, 2048*512, 8*MiB, "mkfs.ext4", "-q", "-L", "BOOT")
	mkfsAt(t, disk, 18432*512, 30*MiB, "mkfs.ext4", "-q")
	tab, f := openDisk(t, disk)
	c, err := tab.FindRoot(f, "x86_64")
	if err != nil || c.Partition.Number != 2 || c.Filesystem.Type != "ext4" {
		t.Fatalf("%+v %v", c, err)
	}
	b, ok, err := tab.FindBoot(f)
	if err != nil || !ok || b.Partition.Number != 1 || b.Filesystem.Label != "BOOT" {
		t.Fatalf("FindBoot: %+v %v %v", b, ok, err)
	}
}

func TestFindRootSkipsALargerSwapOrBootPartition(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 96*MiB, "-n1:0:+40M", "-t1:8300", "-c1:p.lxboot", "-n2:0:+10M", "-t2:8300", "-n3:0:0", "-t3:8300")
	tab, _ := openDisk(t, disk)
	p3 := tab.Partitions[2]
	mkfsAt(t, disk, p3.Start, p3.Size, "mkswap", "-L", "bigswap")
	tab, f := openDisk(t, disk)
	c, err := tab.FindRoot(f, "")
	if err != nil || c.Partition.Number != 2 {
		t.Fatalf("%+v %v", c, err)
	}
	b, ok, err := tab.FindBoot(nil)
	if err != nil || !ok || b.Partition.Number != 1 {
		t.Fatalf("FindBoot: %+v %v %v", b, ok, err)
	}
}

func TestFindBootByXBOOTLDRType(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 32*MiB, "-n1:0:+8M", "-t1:ea00", "-n2:0:0", "-t2:8304")
	tab, _ := openDisk(t, disk)
	b, ok, err := tab.FindBoot(nil)
	if err != nil || !ok || b.Partition.Number != 1 || b.Partition.Kind() != KindXBOOTLDR {
		t.Fatalf("%+v %v %v", b, ok, err)
	}
	sd := sgdiskDisk(t, 32*MiB, "-n1:0:0", "-t1:8304")
	tab, f := openDisk(t, sd)
	if _, ok, err := tab.FindBoot(f); ok || err != nil {
		t.Errorf("no boot partition: ok=%v err=%v", ok, err)
	}
}

func TestFindRootExplainsWhatTheDiskHolds(t *testing.T) {
	t.Parallel()
	disk := sgdiskDisk(t, 32*MiB, "-n1:0:+8M", "-t1:ef00", "-n2:0:0", "-t2:8e00")
	tab, f := openDisk(t, disk)
	_, err := tab.FindRoot(f, "x86_64")
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "#2 Linux LVM") || !strings.Contains(err.Error(), "LVM cannot be read") {
		t.Fatalf("err = %v", err)
	}
	empty := sgdiskDisk(t, 8*MiB, "-o")
	tab, _ = openDisk(t, empty)
	if _, err := tab.FindRoot(nil, ""); !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "no partitions") {
		t.Fatalf("empty: err = %v", err)
	}
}

func TestProbeRecognisesFilesystems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mkfs  string
		args  []string
		typ   string
		label string
	}{
		{"mkfs.ext4", []string{"-q", "-L", "ROOT"}, "ext4", "ROOT"},
		{"mkfs.ext3", []string{"-q", "-L", "old"}, "ext3", "old"},
		{"mkfs.ext2", []string{"-q", "-L", "older"}, "ext2", "older"},
		{"mkfs.vfat", []string{"-n", "EFI"}, "vfat", "EFI"},
		{"mkfs.vfat", []string{"-F", "32", "-n", "ESP32"}, "vfat", "ESP32"},
		{"mkswap", []string{"-L", "swap"}, "swap", "swap"},
		{"mkfs.xfs", []string{"-q", "-L", "xroot"}, "xfs", "xroot"},
		{"mkfs.btrfs", []string{"-q", "-L", "broot"}, "btrfs", "broot"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"-"+tt.label, func(t *testing.T) {
			t.Parallel()
			disk := emptyDisk(t, 400*MiB)
			mkfsAt(t, disk, MiB, 399*MiB, tt.mkfs, tt.args...)
			f, err := os.Open(disk)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fs, err := Probe(f, MiB, 399*MiB)
			if err != nil {
				t.Fatal(err)
			}
			if fs.Type != tt.typ || fs.Label != tt.label {
				t.Errorf("Probe = %+v, want %s %q", fs, tt.typ, tt.label)
			}
			if fs.Type != "vfat" && len(fs.UUID) != 36 {
				t.Errorf("UUID %q", fs.UUID)
			}
		})
	}
	if fs := probeBytes(make([]byte, 70000)); fs.Type != "" {
		t.Errorf("zeros: %+v", fs)
	}
}
