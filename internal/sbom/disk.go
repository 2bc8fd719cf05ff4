package sbom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
)

// Where package databases live, in the order they are looked for.
var (
	dpkgStatus = "/var/lib/dpkg/status"
	// rpm's database: /usr/lib/sysimage/rpm since rpm 4.16 on Fedora,
	// Azure Linux 3 and openSUSE (with /var/lib/rpm a link to it), else
	// /var/lib/rpm; the files of its backends (sqlite, ndb, bdb).
	rpmDirs  = []string{"/usr/lib/sysimage/rpm", "/var/lib/rpm"}
	rpmFiles = []string{"rpmdb.sqlite", "Packages.db", "Index.db", "Packages", "Name"}
)

// DiskOptions say which disk to read and with which tools.
type DiskOptions struct {
	Disk string // raw disk (GPT or MBR)
	Arch string // picks the GPT root type; "" accepts any
	// Debugfs and RPM are the binaries; empty means "debugfs" and "rpm"
	// on PATH. rpm is needed only for images with an rpm database.
	Debugfs, RPM string
	// PackageList is KIWI's package list of the disk (NAME.packages): the
	// packages come from it, the os-release still from the disk. Empty:
	// from the disk's package database.
	PackageList string
}

// Found is what ReadDisk found.
type Found struct {
	Packages []Package
	OS       OSRelease
	Source   string // "dpkg status file (/var/lib/dpkg/status) in partition 2"
}

// ReadDisk reads the package database of the disk's root filesystem
// without mounting it (debugfs; ext2/3/4 only): dpkg's status file, else
// rpm's database, copied into a temporary directory and queried with the
// host's rpm --dbpath. It fails with ErrNoDatabase when there is neither.
// With o.PackageList the packages come from that KIWI list instead.
func ReadDisk(ctx context.Context, o DiskOptions) (*Found, error) {
	fs, root, err := bootfiles.RootFS(o.Disk, o.Arch, o.Debugfs)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("partition %d", root.Partition.Number)
	found := &Found{}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := fs.ReadFile(ctx, p)
		if err == nil {
			found.OS = ParseOSRelease(b)
			break
		}
		if !errors.Is(err, bootfiles.ErrNotFound) {
			return nil, err
		}
	}

	if o.PackageList != "" {
		lf, err := os.Open(o.PackageList)
		if err != nil {
			return nil, err
		}
		defer lf.Close()
		if found.Packages, err = ParseKiwiList(lf); err != nil {
			return nil, fmt.Errorf("%s: %w", o.PackageList, err)
		}
		found.Source = fmt.Sprintf("KIWI package list (%s)", filepath.Base(o.PackageList))
		return found, nil
	}

	status, err := fs.ReadFile(ctx, dpkgStatus)
	switch {
	case err == nil:
		found.Packages, err = ParseDpkgStatus(bytes.NewReader(status))
		if err != nil {
			return nil, fmt.Errorf("%s %s:%s: %w", o.Disk, where, dpkgStatus, err)
		}
		found.Source = fmt.Sprintf("dpkg status file (%s) in %s", dpkgStatus, where)
		return found, nil
	case !errors.Is(err, bootfiles.ErrNotFound):
		return nil, err
	}

	for _, dir := range rpmDirs {
		real, err := fs.Resolve(ctx, dir)
		if errors.Is(err, bootfiles.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found.Packages, err = queryRPM(ctx, fs, real, o.RPM)
		if errors.Is(err, ErrNoDatabase) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s:%s: %w", o.Disk, where, dir, err)
		}
		found.Source = fmt.Sprintf("rpm database (%s) in %s", dir, where)
		return found, nil
	}
	return nil, fmt.Errorf("%s %s: %w: neither %s nor an rpm database in %s", o.Disk, where, ErrNoDatabase, dpkgStatus, strings.Join(rpmDirs, " or "))
}

// queryRPM copies the database files in dir out of fs and lists the
// packages with rpm --dbpath.
func queryRPM(ctx context.Context, fs bootfiles.ExtFS, dir, rpm string) ([]Package, error) {
	entries, err := fs.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "osimage-rpmdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	found := false
	for _, e := range entries {
		if !e.Regular() {
			continue
		}
		if err := fs.Dump(ctx, path.Join(dir, e.Name), filepath.Join(tmp, e.Name)); err != nil {
			return nil, err
		}
		found = found || slices.Contains(rpmFiles, e.Name)
	}
	if !found {
		return nil, ErrNoDatabase
	}
	return QueryRPM(ctx, rpm, tmp)
}

// QueryRPM lists the packages of the rpm database in dbpath with the rpm
// binary (empty: "rpm" on PATH).
func QueryRPM(ctx context.Context, rpm, dbpath string) ([]Package, error) {
	if rpm == "" {
		rpm = "rpm"
	}
	bin, err := exec.LookPath(rpm)
	if err != nil {
		return nil, fmt.Errorf("the image has an rpm database, and reading it needs rpm: %v (on Debian: apt-get install rpm)", err)
	}
	// --nosignature/--nodigest: the database is read, not verified; a
	// private HOME keeps the host's ~/.rpmmacros out.
	cmd := exec.CommandContext(ctx, bin, "--dbpath", dbpath, "--nosignature", "--nodigest", "-qa", "--qf", rpmQueryFormat)
	cmd.Env = append(os.Environ(), "HOME="+dbpath, "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rpm -qa --dbpath %s: %v: %s", dbpath, err, strings.TrimSpace(stderr.String()))
	}
	return parseRPMQuery(stdout.Bytes())
}
