package sbom

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// rootDisk makes a GPT disk whose x86-64 root partition holds an ext4
// filesystem with the files of tree (path -> content, "->target" for a
// symlink), with mkfs.ext4 -d and sgdisk: no root, no loop device.
func rootDisk(t *testing.T, tree map[string]string, dirs ...string) string {
	t.Helper()
	mkfs := testutil.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	sgdisk := testutil.NeedTool(t, "sgdisk", "gdisk")
	testutil.NeedTool(t, "debugfs", "e2fsprogs")
	src := testutil.WriteTree(t, tree)
	for _, d := range dirs { // whole directories, copied in
		if err := exec.Command("cp", "-a", d+"/.", src).Run(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	fs, disk := filepath.Join(dir, "root.img"), filepath.Join(dir, "disk.raw")
	testutil.Run(t, "truncate", "-s", "32M", fs)
	testutil.Run(t, mkfs, "-q", "-d", src, fs)
	testutil.Run(t, "truncate", "-s", "40M", disk)
	testutil.Run(t, sgdisk, "-n", "1:2048:+32M", "-t", "1:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", disk)
	testutil.Run(t, "dd", "if="+fs, "of="+disk, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none")
	return disk
}

func TestADebianDiskGivesItsDpkgStatusAndOSRelease(t *testing.T) {
	disk := rootDisk(t, map[string]string{
		"var/lib/dpkg/status": dpkgStatusText,
		"etc/os-release":      "->../usr/lib/os-release",
		"usr/lib/os-release":  "ID=debian\nVERSION_ID=\"12\"\n",
	})
	f, err := ReadDisk(context.Background(), DiskOptions{Disk: disk, Arch: "x86_64"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Packages) != 3 || f.Packages[1].Name != "libc6" || f.OS.ID != "debian" || f.OS.VersionID != "12" ||
		f.Source != "dpkg status file (/var/lib/dpkg/status) in partition 1" {
		t.Fatalf("%+v", f)
	}
}

func TestADiskWithoutAPackageDatabaseSaysSo(t *testing.T) {
	disk := rootDisk(t, map[string]string{"etc/hostname": "x\n"})
	_, err := ReadDisk(context.Background(), DiskOptions{Disk: disk})
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "/var/lib/dpkg/status") || !strings.Contains(err.Error(), "/usr/lib/sysimage/rpm") {
		t.Fatalf("want ErrNoDatabase naming where it looked, got %v", err)
	}
	// A directory where rpm's database would be, without its files.
	notDB := rootDisk(t, map[string]string{"var/lib/rpm/README": "see /usr/lib/sysimage/rpm\n"})
	if _, err := ReadDisk(context.Background(), DiskOptions{Disk: notDB}); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("an rpm directory without a database: %v", err)
	}
	bad := rootDisk(t, map[string]string{"var/lib/dpkg/status": "Package: a\nStatus: install ok installed\n"})
	if _, err := ReadDisk(context.Background(), DiskOptions{Disk: bad}); err == nil || !strings.Contains(err.Error(), "partition 1:/var/lib/dpkg/status") {
		t.Fatalf("a broken status file: %v", err)
	}
}

// rpmDB builds two tiny packages with rpmbuild and records them in a new
// database under dir/usr/lib/sysimage/rpm with rpm --justdb.
func rpmDB(t *testing.T) string {
	t.Helper()
	rpm := testutil.NeedTool(t, "rpm", "rpm")
	rpmbuild := testutil.NeedTool(t, "rpmbuild", "rpm")
	top, root := t.TempDir(), t.TempDir()
	db := filepath.Join(root, "usr", "lib", "sysimage", "rpm")
	os.MkdirAll(db, 0o755)
	env := append(os.Environ(), "HOME="+top)
	for _, p := range []struct{ name, epoch, license string }{{"hello", "", "MIT"}, {"oldstyle", "3", "GPLv2+"}} {
		spec := filepath.Join(top, p.name+".spec")
		epoch := ""
		if p.epoch != "" {
			epoch = "Epoch: " + p.epoch + "\n"
		}
		os.WriteFile(spec, []byte(fmt.Sprintf("Name: %s\nVersion: 1.2\nRelease: 3.test\n%sSummary: s\nLicense: %s\nVendor: Test Vendor\nBuildArch: noarch\n%%description\nd\n%%files\n",
			p.name, epoch, p.license)), 0o644)
		cmd := exec.Command(rpmbuild, "-bb", "--define", "_topdir "+top, spec)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rpmbuild: %v\n%s", err, out)
		}
	}
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", "*.rpm"))
	cmd := exec.Command(rpm, append([]string{"--dbpath", db, "-i", "--justdb", "--nodeps", "--noscripts", "--nosignature"}, rpms...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || len(rpms) != 2 {
		t.Fatalf("rpm -i --justdb %v: %v\n%s", rpms, err, out)
	}
	return root
}

func TestAnRPMDiskGivesItsDatabaseThroughTheHostsRPM(t *testing.T) {
	tree := rpmDB(t)
	disk := rootDisk(t, map[string]string{"etc/os-release": "ID=azurelinux\nVERSION_ID=\"3.0\"\n", "var/lib/rpm": "->../../usr/lib/sysimage/rpm"}, tree)
	f, err := ReadDisk(context.Background(), DiskOptions{Disk: disk})
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Type: TypeRPM, Name: "hello", Version: "1.2-3.test", Arch: "noarch", Source: "hello", SourceVersion: "1.2-3.test", License: "MIT", Supplier: "Test Vendor"},
		{Type: TypeRPM, Name: "oldstyle", Epoch: "3", Version: "1.2-3.test", Arch: "noarch", Source: "oldstyle", SourceVersion: "1.2-3.test", License: "GPLv2+", Supplier: "Test Vendor"},
	}
	if !slices.Equal(f.Packages, want) || f.Source != "rpm database (/usr/lib/sysimage/rpm) in partition 1" || f.OS.ID != "azurelinux" {
		t.Fatalf("got  %+v (%s)\nwant %+v", f.Packages, f.Source, want)
	}
	if _, err := ReadDisk(context.Background(), DiskOptions{Disk: disk, RPM: "rpm-not-installed"}); err == nil || !strings.Contains(err.Error(), "apt-get install rpm") {
		t.Fatalf("without rpm: %v", err)
	}
}

func TestAKiwiListGivesThePackagesAndTheDiskItsOSRelease(t *testing.T) {
	disk := rootDisk(t, map[string]string{"var/lib/dpkg/status": dpkgStatusText, "etc/os-release": "ID=debian\nVERSION_ID=12\n"})
	list := filepath.Join(t.TempDir(), "debian.x86_64-1.0.packages")
	os.WriteFile(list, []byte("apt|None|2.6.1|None|amd64|None|None\n"), 0o644)
	f, err := ReadDisk(context.Background(), DiskOptions{Disk: disk, PackageList: list})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Packages) != 1 || f.Packages[0].Name != "apt" || f.OS.ID != "debian" || f.Source != "KIWI package list (debian.x86_64-1.0.packages)" {
		t.Fatalf("%+v", f)
	}
	os.WriteFile(list, []byte("apt\n"), 0o644)
	if _, err := ReadDisk(context.Background(), DiskOptions{Disk: disk, PackageList: list}); err == nil || !strings.Contains(err.Error(), list+": KIWI package list line 1") {
		t.Fatalf("a broken list: %v", err)
	}
}
