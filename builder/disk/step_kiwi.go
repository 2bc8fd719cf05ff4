package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/diskfmt"
	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/partition"
)

// Names inside the output directory.
const (
	// kiwiTargetName is KIWI's --target-dir inside the output directory;
	// on the same filesystem, so results are moved out by rename.
	kiwiTargetName = "kiwi-target"
	// KiwiLogName is the full KIWI console log.
	KiwiLogName = "kiwi.log"
)

// stepKiwiBuild runs `kiwi-ng ... system build` into a target directory
// inside the output directory, streams every line to the UI and to
// kiwi.log, then moves what kiwi.result.json names (disk, format image,
// package list, kis files) into the output directory under stable names
// and removes the target directory with KIWI's image root.
//
// Cancelling stops kiwi-ng and its children (SIGINT to its process group,
// SIGKILL after a grace period); Cleanup then unmounts what KIWI left and
// removes the target directory.
type stepKiwiBuild struct {
	opts      kiwi.Options // without the target directory
	binary    string       // kiwi-ng
	outputDir string
	key       string // outputs are named <key>.<suffix>
	diskName  string
	bootFiles bool // take kernel, initramfs and rootfs from KIWI's kis output

	targetDir  string
	wrapperDir string
	written    []string
}

func (s *stepKiwiBuild) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	out := getOutputs(state)
	fail := func(err error) multistep.StepAction { return halt(state, err) }

	s.targetDir = filepath.Join(s.outputDir, kiwiTargetName)
	logPath := filepath.Join(s.outputDir, KiwiLogName)
	opts := s.opts
	opts.TargetDir = s.targetDir
	args, err := opts.Args()
	if err != nil {
		return fail(err)
	}
	// The losetup wrapper (see kiwi.LosetupWrapperNeeded) lives outside the
	// output directory, so nothing of it can end up in the artifact.
	if s.wrapperDir, err = os.MkdirTemp("", "osimage-kiwi-bin-"); err != nil {
		return fail(fmt.Errorf("directory for the losetup wrapper: %w", err))
	}
	r := &kiwi.Runner{
		Binary:     s.binary,
		LogPath:    logPath,
		WrapperDir: s.wrapperDir,
		// Message, not Say: these are a command's output lines, shown
		// indented under the build name like the SDK's RunWithUi does.
		Output: func(line string) { ui.Message(line) },
	}
	bin, _ := r.LookPath()
	ui.Sayf("Building %s with KIWI: %s %s", s.diskName, bin, shellQuote(args))
	ui.Sayf("KIWI's output is also written to %s", logPath)

	t0 := time.Now()
	err = r.Run(ctx, args)
	state.Put(StateKiwiDuration, time.Since(t0))
	took := time.Since(t0).Round(time.Second)
	if err != nil {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("build cancelled after %v: %w; the partial output is removed", took, err))
		}
		var be *kiwi.BuildError
		if errors.As(err, &be) {
			be.LogPath = preserveLog(logPath, s.key)
		}
		return fail(fmt.Errorf("KIWI build of %s failed after %v: %w", describe(opts), took, err))
	}
	ui.Sayf("kiwi-ng finished in %v", took)

	res, err := kiwi.ParseResult(s.targetDir)
	if err != nil {
		return fail(fmt.Errorf("kiwi-ng exited successfully but its result is unusable: %w (full log: %s)", err, preserveLog(logPath, s.key)))
	}
	state.Put(StateKiwiResult, res)
	ui.Sayf("KIWI result: %s", strings.Join(res.Keys(), ", "))

	if err := s.collect(ctx, ui, res, out); err != nil {
		return fail(err)
	}
	out.add(artifact.File{Path: logPath, Role: artifact.RoleLog, Format: "text"})

	ui.Say("Removing KIWI's target directory (build/image-root and what was not moved out)")
	t1 := time.Now()
	if err := kiwi.UnmountAndRemove(s.targetDir); err != nil {
		return fail(fmt.Errorf("remove KIWI target directory: %w", err))
	}
	log.Printf("[INFO] osimage-disk: removing %s took %v", s.targetDir, time.Since(t1))
	s.targetDir = ""
	disk, _ := out.one(artifact.RoleDisk)
	putGenerated(state, "DiskPath", disk.Path)
	return multistep.ActionContinue
}

// collect moves KIWI's outputs into the output directory under names
// derived from the disk name, and records them.
func (s *stepKiwiBuild) collect(ctx context.Context, ui packersdk.Ui, res *kiwi.Result, out *outputs) error {
	dir, key := s.outputDir, s.key
	move := func(src, name string) (string, error) {
		dst := filepath.Join(dir, name)
		if err := os.Rename(src, dst); err != nil {
			return "", fmt.Errorf("move KIWI output %s into the output directory: %w", src, err)
		}
		s.written = append(s.written, dst)
		return dst, nil
	}

	format, err := diskfmt.Detect(res.Disk)
	if err != nil {
		return fmt.Errorf("KIWI disk image: %w", err)
	}
	if format != diskfmt.Raw {
		return fmt.Errorf("KIWI's disk_image %s is %s, expected a raw disk", res.Disk, format)
	}
	disk, err := move(res.Disk, s.diskName)
	if err != nil {
		return err
	}
	ui.Sayf("Disk: %s (from %s)", disk, filepath.Base(res.Disk))
	out.add(artifact.File{Path: disk, Role: artifact.RoleDisk, Format: diskfmt.Raw})

	if res.DiskFormat != "" {
		ext := filepath.Ext(res.DiskFormat)
		p, err := move(res.DiskFormat, key+ext)
		if err != nil {
			return err
		}
		f := artifact.File{Path: p, Role: roleOther}
		if f.Format, err = diskfmt.Detect(p); err != nil {
			return err
		}
		if f.Format == diskfmt.VPC {
			f.Role = artifact.RoleVHD
		}
		ui.Sayf("Disk in the description's format: %s (%s)", p, f.Format)
		out.add(f)
	}
	if res.Packages != "" {
		p, err := move(res.Packages, key+".packages")
		if err != nil {
			return err
		}
		out.add(artifact.File{Path: p, Role: artifact.RolePackages, Format: "kiwi-packages"})
	}

	if !s.bootFiles {
		return nil
	}
	if res.KISArchive != "" && !res.SeparateKIS() {
		ui.Sayf("Extracting KIWI's kis archive %s", filepath.Base(res.KISArchive))
	}
	k, err := res.KIS(ctx, filepath.Join(s.targetDir, "osimage-kis"))
	if err != nil || k == nil {
		return err // no kis output: stepBootFiles extracts the files from the disk
	}
	for _, f := range []struct{ src, role, suffix string }{
		{k.Kernel, artifact.RoleKernel, ".kernel"}, {k.Initrd, artifact.RoleInitrd, ".initrd"}, {k.Rootfs, artifact.RoleRootfs, ".rootfs"},
		{k.Append, artifact.RoleCmdline, ".cmdline"},
	} {
		if f.src == "" { // KIWI writes the .append file only for dracut initrds
			continue
		}
		p, err := move(f.src, key+f.suffix)
		if err != nil {
			return err
		}
		ui.Sayf("%s from KIWI's kis output: %s", f.role, p)
		out.add(artifact.File{Path: p, Role: f.role, Format: kisFormat(f.role, p)})
	}
	if k.Cmdline != "" {
		ui.Sayf("Kernel command line: %s", k.Cmdline)
	}
	return nil
}

// kisFormat is the Format of a kis file: the filesystem of the rootfs
// image, as far as partition.Probe recognises it.
func kisFormat(role, path string) string {
	if role != artifact.RoleRootfs {
		return ""
	}
	return probeFS(path)
}

// probeFS names the filesystem in an image file ("" when unknown).
func probeFS(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	fs, err := partition.Probe(f, 0, st.Size())
	if err != nil {
		return ""
	}
	return fs.Type
}

func (s *stepKiwiBuild) Cleanup(state multistep.StateBag) {
	if s.wrapperDir != "" {
		os.RemoveAll(s.wrapperDir)
	}
	if !halted(state) {
		return
	}
	ui := state.Get("ui").(packersdk.Ui)
	if s.targetDir != "" {
		ui.Say("Removing KIWI's target directory (unmounting and detaching what KIWI left first)")
		if err := kiwi.UnmountAndRemove(s.targetDir); err != nil {
			ui.Errorf("Could not remove %s: %v", s.targetDir, err)
		}
	}
	for _, p := range s.written {
		os.Remove(p)
	}
}

// roleOther marks files that are neither a disk for the next step nor a
// boot file: a qcow2 or vmdk KIWI made besides the raw disk.
const roleOther = "other"

// preserveLog copies the KIWI log out of the output directory, which is
// deleted when the build fails, and returns where it is now (or the
// original path if copying failed).
func preserveLog(logPath, key string) string {
	src, err := os.Open(logPath)
	if err != nil {
		return logPath
	}
	defer src.Close()
	dst, err := os.CreateTemp("", fmt.Sprintf("osimage-disk-%s-kiwi-%s-*.log", key, time.Now().Format("20060102-150405")))
	if err != nil {
		return logPath
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst.Name())
		return logPath
	}
	return dst.Name()
}

func describe(o kiwi.Options) string {
	d := o.Description
	if o.KiwiFile != "" {
		d = filepath.Join(d, o.KiwiFile)
	}
	if len(o.Profiles) > 0 {
		d += " (profiles " + strings.Join(o.Profiles, ", ") + ")"
	}
	return d
}

// shellQuote renders args for display (they are never run through a shell).
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
