package partition

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNoRoot: no partition qualifies as the root filesystem.
var ErrNoRoot = errors.New("no root partition")

// Choice is a partition picked for a role, with its filesystem (when a
// reader was given) and the rule that picked it.
type Choice struct {
	Partition  Partition
	Filesystem Filesystem
	Reason     string
}

// Names KIWI and others give partitions and filesystems (compared without
// case).
var (
	rootNames = []string{"p.lxroot", "root"}
	bootNames = []string{"p.lxboot", "boot"}
	// Labels that mark a partition as not the root in the size fallback.
	notRootLabels = []string{"boot", "efi", "esp", "swap", "uefi", "p.lxboot", "p.uefi", "p.swap"}
)

// FindRoot picks the root partition, by the first rule that matches:
//
//  1. a GPT partition with the Discoverable Partitions root type of arch
//     (any arch's root type when arch is empty); a root type only for
//     another architecture is an error, since the disk does not fit;
//  2. a Linux partition whose GPT name is "p.lxroot" (KIWI) or "root";
//  3. a Linux partition whose filesystem label is "ROOT" (KIWI) or "root"
//     (needs r);
//  4. the largest Linux filesystem partition (GPT Linux filesystem or root
//     type, MBR 0x83) that is not swap, FAT or labelled/named boot, EFI or
//     swap.
//
// The first match in table order wins within rules 1 to 3. r may be nil;
// rule 3 and the filesystem checks of rule 4 are then skipped.
func (t *Table) FindRoot(r io.ReaderAt, arch string) (Choice, error) {
	want := ""
	if arch != "" {
		want = RootTypeFor(arch)
	}
	var linux []Partition
	var otherArch []string
	for _, p := range t.Partitions {
		switch p.Kind() {
		case KindLinuxRoot:
			linux = append(linux, p)
			if want == "" && arch == "" || p.TypeGUID == want {
				return t.choose(r, p, fmt.Sprintf("partition %d has the GPT root type %s", p.Number, p.TypeName()))
			}
			otherArch = append(otherArch, fmt.Sprintf("partition %d is %s", p.Number, p.TypeName()))
		case KindLinuxFS:
			linux = append(linux, p)
		}
	}
	if len(otherArch) > 0 {
		return Choice{}, fmt.Errorf("%w for %s: %s", ErrNoRoot, NormaliseArch(arch), strings.Join(otherArch, ", "))
	}
	for _, p := range linux {
		if matchName(p.Name, rootNames) {
			return t.choose(r, p, fmt.Sprintf("partition %d is named %q", p.Number, p.Name))
		}
	}
	fss := map[int]Filesystem{}
	if r != nil {
		for _, p := range linux {
			fs, err := Probe(r, p.Start, p.Size)
			if err != nil {
				return Choice{}, err
			}
			fss[p.Number] = fs
			if matchName(fs.Label, rootNames[1:]) {
				return Choice{Partition: p, Filesystem: fs,
					Reason: fmt.Sprintf("partition %d holds %s labelled %q", p.Number, fs.Type, fs.Label)}, nil
			}
		}
	}
	var best *Partition
	for i, p := range linux {
		fs := fss[p.Number]
		if matchName(p.Name, notRootLabels) || matchName(fs.Label, notRootLabels) || fs.Type == "swap" || fs.Type == "vfat" {
			continue
		}
		if best == nil || p.Size > best.Size {
			best = &linux[i]
		}
	}
	if best != nil {
		return Choice{Partition: *best, Filesystem: fss[best.Number],
			Reason: fmt.Sprintf("partition %d is the largest Linux filesystem partition (%d bytes)", best.Number, best.Size)}, nil
	}
	return Choice{}, fmt.Errorf("%w: %s", ErrNoRoot, t.describe())
}

// FindBoot finds a separate /boot partition: GPT XBOOTLDR type (or MBR 0xEA),
// else a Linux partition named "p.lxboot" or "boot", else (with r) one whose
// filesystem is labelled "BOOT". ok is false when there is none.
func (t *Table) FindBoot(r io.ReaderAt) (c Choice, ok bool, err error) {
	for _, p := range t.Partitions {
		if p.Kind() == KindXBOOTLDR {
			c, err := t.choose(r, p, fmt.Sprintf("partition %d has the %s type", p.Number, p.TypeName()))
			return c, err == nil, err
		}
	}
	for _, p := range t.Partitions {
		if k := p.Kind(); (k == KindLinuxFS || k == KindOther) && matchName(p.Name, bootNames) {
			c, err := t.choose(r, p, fmt.Sprintf("partition %d is named %q", p.Number, p.Name))
			return c, err == nil, err
		}
	}
	if r == nil {
		return Choice{}, false, nil
	}
	for _, p := range t.Partitions {
		if p.Kind() != KindLinuxFS {
			continue
		}
		fs, err := Probe(r, p.Start, p.Size)
		if err != nil {
			return Choice{}, false, err
		}
		if matchName(fs.Label, bootNames[1:]) {
			return Choice{Partition: p, Filesystem: fs,
				Reason: fmt.Sprintf("partition %d holds %s labelled %q", p.Number, fs.Type, fs.Label)}, true, nil
		}
	}
	return Choice{}, false, nil
}

func (t *Table) choose(r io.ReaderAt, p Partition, reason string) (Choice, error) {
	c := Choice{Partition: p, Reason: reason}
	if r != nil {
		fs, err := Probe(r, p.Start, p.Size)
		if err != nil {
			return Choice{}, err
		}
		c.Filesystem = fs
	}
	return c, nil
}

func (t *Table) describe() string {
	if len(t.Partitions) == 0 {
		return fmt.Sprintf("the %s table has no partitions", t.Scheme)
	}
	parts := make([]string, len(t.Partitions))
	lvm := false
	for i, p := range t.Partitions {
		parts[i] = p.String()
		lvm = lvm || p.Kind() == KindLVM
	}
	s := fmt.Sprintf("the %s table holds %s", t.Scheme, strings.Join(parts, "; "))
	if lvm {
		s += " (a root on LVM cannot be read without activating the volume group)"
	}
	return s
}

func matchName(s string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(s, n) {
			return true
		}
	}
	return false
}
