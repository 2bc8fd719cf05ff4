package bootfiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLsPReadsNamesWithSpacesAndSkipsDots(t *testing.T) {
	t.Parallel()
	out := "\n/2/040755/0/0/.//\n/2/040755/0/0/..//\n/12/100644/0/0/vmlinuz-6.1 test/1234/\n/13/120777/0/0/vmlinuz/27/\n/14/040700/0/0/grub//\n\n"
	got, err := parseLsP([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "vmlinuz-6.1 test", Inode: 12, Mode: 0o100644, Size: 1234},
		{Name: "vmlinuz", Inode: 13, Mode: 0o120777, Size: 27},
		{Name: "grub", Inode: 14, Mode: 0o040700},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !got[0].Regular() || !got[1].Symlink() || !got[2].Dir() {
		t.Error("type bits misread")
	}
	for _, bad := range []string{"garbage\n", "/1/2/3/\n", "/x/100644/0/0/a/1/\n", "/1/100644/0/0/a/big/\n"} {
		if _, err := parseLsP([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPickBootFiles(t *testing.T) {
	t.Parallel()
	reg := func(n string) Entry { return Entry{Name: n, Mode: 0o100644, Size: 1} }
	link := func(n string) Entry { return Entry{Name: n, Mode: 0o120777} }
	tests := []struct {
		name          string
		entries       []Entry
		links         map[string]string
		preferred     string
		kernel, initr string
		err           string
	}{
		{"debian", []Entry{reg("vmlinuz-6.1.0-9-amd64"), reg("initrd.img-6.1.0-9-amd64"), reg("config-6.1.0-9-amd64")}, nil, "",
			"vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64", ""},
		{"highest version", []Entry{reg("vmlinuz-6.1.0-9-amd64"), reg("initrd.img-6.1.0-9-amd64"), reg("vmlinuz-6.1.0-50-amd64"), reg("initrd.img-6.1.0-50-amd64")}, nil, "",
			"vmlinuz-6.1.0-50-amd64", "initrd.img-6.1.0-50-amd64", ""},
		{"root link preferred", []Entry{reg("vmlinuz-6.1.0-9-amd64"), reg("initrd.img-6.1.0-9-amd64"), reg("vmlinuz-6.1.0-50-amd64"), reg("initrd.img-6.1.0-50-amd64")}, nil, "vmlinuz-6.1.0-9-amd64",
			"vmlinuz-6.1.0-9-amd64", "initrd.img-6.1.0-9-amd64", ""},
		{"boot link beats preferred", []Entry{reg("vmlinuz-1"), reg("initrd-1"), reg("vmlinuz-2"), reg("initrd-2"), link("vmlinuz")}, map[string]string{"vmlinuz": "vmlinuz-1"}, "vmlinuz-2",
			"vmlinuz-1", "initrd-1", ""},
		{"dangling link ignored", []Entry{reg("vmlinuz-1"), reg("initrd-1"), link("vmlinuz")}, map[string]string{"vmlinuz": "vmlinuz-9"}, "",
			"vmlinuz-1", "initrd-1", ""},
		{"fedora names", []Entry{reg("vmlinuz-6.8.5-301.fc40.x86_64"), reg("initramfs-6.8.5-301.fc40.x86_64.img")}, nil, "",
			"vmlinuz-6.8.5-301.fc40.x86_64", "initramfs-6.8.5-301.fc40.x86_64.img", ""},
		{"initrd only through a link", []Entry{reg("Image-6.6.0"), reg("my-initrd"), link("initrd")}, map[string]string{"initrd": "my-initrd"}, "",
			"Image-6.6.0", "my-initrd", ""},
		{"old and signatures skipped", []Entry{reg("vmlinuz-2.old"), reg("vmlinuz-1"), reg("vmlinuz-1.sig"), reg("initrd.img-1")}, nil, "",
			"vmlinuz-1", "initrd.img-1", ""},
		{"no kernel", []Entry{reg("config-1"), reg("initrd.img-1")}, nil, "", "", "", "no kernel (no vmlinuz-*"},
		{"no initrd", []Entry{reg("vmlinuz-1")}, nil, "", "", "", "no initramfs for version 1"},
		{"kernel names a dir", []Entry{{Name: "vmlinuz-1", Mode: 0o040755}}, nil, "", "", "", "no kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickBootFiles(tt.entries, tt.links, tt.preferred)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.kernel.Name != tt.kernel || got.initrd.Name != tt.initr {
				t.Errorf("got %s + %s, want %s + %s", got.kernel.Name, got.initrd.Name, tt.kernel, tt.initr)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-50-amd64", "6.1.0-9-amd64", 1},
		{"6.10", "6.9", 1},
		{"6.1", "6.1", 0},
		{"6.1.0", "6.1", 1},
		{"6.01", "6.1", 0},
		{"5.14.21-150500", "5.14.21-150400", 1},
		{"a", "b", -1},
		{"1a", "1", 1},
	} {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestExtFSReadFileFollowsSymlinksLikeTheKernel(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	img := mkfs(t, tree{
		"usr/lib/os-release": "VERSION_CODENAME=bookworm\n",
		"etc/os-release":     "->../usr/lib/os-release",
		"lib":                "->usr/lib",
		"abs":                "->/etc/os-release",
		"up":                 "->../../../usr",
		"loop1":              "->loop2",
		"loop2":              "->loop1",
	}, 8*MiB)
	fs := ExtFS{Image: img}
	ctx := context.Background()
	for _, p := range []string{"/etc/os-release", "/lib/os-release", "abs", "/up/lib/os-release", "/etc/../lib/./os-release"} {
		got, err := fs.ReadFile(ctx, p)
		if err != nil || string(got) != "VERSION_CODENAME=bookworm\n" {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}
	if r, err := fs.Resolve(ctx, "/lib/os-release"); err != nil || r != "/usr/lib/os-release" {
		t.Errorf("Resolve = %q, %v", r, err)
	}
	if _, err := fs.ReadFile(ctx, "/loop1"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("loop: %v", err)
	}
	if _, err := fs.ReadFile(ctx, "/etc/os-release/x"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as dir: %v", err)
	}
}

func TestExtFSReadsLinksFilesAndReportsMissingPaths(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	long := "/" + strings.Repeat("d", 70) + "/target"
	img := mkfs(t, tree{
		"fast":       "->short/target",
		"slow":       "->" + long,
		"file":       "content",
		"with space": "spaced",
	}, 8*MiB)
	fs := ExtFS{Image: img}
	ctx := context.Background()
	if got, err := fs.Readlink(ctx, "/fast"); err != nil || got != "short/target" {
		t.Errorf("fast link: %q, %v", got, err)
	}
	if got, err := fs.Readlink(ctx, "/slow"); err != nil || got != long {
		t.Errorf("slow link: %q, %v", got, err)
	}
	if _, err := fs.Readlink(ctx, "/file"); err == nil || !strings.Contains(err.Error(), "not a symbolic link") {
		t.Errorf("file: %v", err)
	}
	if got, err := fs.ReadFile(ctx, "/with space"); err != nil || string(got) != "spaced" {
		t.Errorf("spaced name: %q, %v", got, err)
	}
	if _, err := fs.ReadFile(ctx, "/missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := fs.List(ctx, "/missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := fs.ReadFile(ctx, `/a"b`); err == nil || !strings.Contains(err.Error(), "quote") {
		t.Errorf("quote: %v", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := fs.Dump(ctx, "/file", out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "content" {
		t.Errorf("dump wrote %q", b)
	}
	if _, err := (ExtFS{Image: filepath.Join(t.TempDir(), "none.img")}).List(ctx, "/"); err == nil {
		t.Error("missing image accepted")
	}
	if _, err := (ExtFS{Image: img, Debugfs: "debugfs-missing"}).List(ctx, "/"); err == nil || !strings.Contains(err.Error(), "e2fsprogs") {
		t.Errorf("missing debugfs: %v", err)
	}
}

// TestExtFSNamesItsImageAndOffsetInMessages: an ExtFS is named by its image,
// and by the byte offset when the filesystem starts inside it.
func TestExtFSNamesItsImageAndOffsetInMessages(t *testing.T) {
	t.Parallel()
	if s := (ExtFS{Image: "root.img"}).String(); s != "root.img" {
		t.Errorf("String() = %q, want root.img", s)
	}
	if s := (ExtFS{Image: "disk.raw", Offset: 1 << 20}).String(); s != "disk.raw at byte 1048576" {
		t.Errorf("String() = %q, want disk.raw at byte 1048576", s)
	}
}

// TestExtFSReportsHowASilentDebugfsFailed: when debugfs fails without
// printing anything, the error says how it ended.
func TestExtFSReportsHowASilentDebugfsFailed(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "debugfs")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := ExtFS{Image: "root.img", Debugfs: bin}.ReadFile(context.Background(), "/etc/os-release")
	if err == nil || !strings.Contains(err.Error(), "on root.img: exit status 3") {
		t.Errorf("err = %v, want debugfs's exit status and the image", err)
	}
}

// TestExtFSFollowsAChainOfMaxLinksSymlinks: like the kernel (40 links),
// a path through exactly maxLinks symbolic links resolves; one more is
// "too many levels".
func TestExtFSFollowsAChainOfMaxLinksSymlinks(t *testing.T) {
	t.Parallel()
	need(t, "debugfs")
	tr := tree{"target": "at the end\n"}
	// l1 -> l2 -> ... -> l{maxLinks} -> target: maxLinks links.
	for i := 1; i <= maxLinks+1; i++ {
		next := fmt.Sprintf("l%d", i+1)
		if i == maxLinks {
			next = "target"
		}
		if i == maxLinks+1 {
			next = "l1" // l{maxLinks+1} -> l1 -> ...: one link more
		}
		tr[fmt.Sprintf("l%d", i)] = "->" + next
	}
	fs := ExtFS{Image: mkfs(t, tr, 8*MiB)}
	if got, err := fs.ReadFile(context.Background(), "/l1"); err != nil || string(got) != "at the end\n" {
		t.Errorf("%d links: %q, %v", maxLinks, got, err)
	}
	if _, err := fs.ReadFile(context.Background(), fmt.Sprintf("/l%d", maxLinks+1)); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("%d links: err = %v, want too many levels", maxLinks+1, err)
	}
}
