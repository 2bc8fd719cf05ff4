package kiwi

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Where UnmountAndRemove looks, replaceable in tests.
var (
	mountInfoPath = "/proc/self/mountinfo"
	sysBlockPath  = "/sys/block"
)

// UnmountAndRemove deletes a KIWI target directory safely after a failed or
// cancelled build.
//
// A KIWI killed mid-build leaves bind mounts of the host's /dev, /proc,
// /sys and its cache inside build/image-root, and loop devices attached to
// the disk file. A plain os.RemoveAll would walk into the bind-mounted /dev
// and delete the host's device nodes. It also leaves the disk's root
// partition mounted outside dir, under /var/tmp/kiwi_mount_manager.*,
// through a loop device backed by the disk file: removing the file then
// keeps its space allocated until reboot. UnmountAndRemove first detaches
// (lazily, deepest first) every mount under dir and every mount of a loop
// device backed by a file under dir, detaches those loop devices, checks
// that no mount is left under dir, and only then removes dir.
func UnmountAndRemove(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if os.IsNotExist(err) {
		return nil
	}
	if abs == "/" {
		return fmt.Errorf("refusing to remove /")
	}
	mounts, err := mountsUnder(abs)
	if err != nil {
		return err
	}
	for _, m := range mounts { // deepest first
		if err := unmountDetach(m); err != nil {
			return fmt.Errorf("unmount %s (left by KIWI): %w", m, err)
		}
	}
	loops := loopsUnder(abs)
	loopMounts, err := mountsOfDevices(loops)
	if err != nil {
		return err
	}
	for _, m := range loopMounts { // deepest first
		if err := unmountDetach(m); err != nil {
			return fmt.Errorf("unmount %s (a disk under %s, mounted by KIWI): %w", m, abs, err)
		}
		if strings.HasPrefix(filepath.Base(m), "kiwi_mount_manager.") {
			os.Remove(m) // KIWI's own temporary mount point, empty now; never recursive
		}
	}
	if err := detachLoops(loops); err != nil {
		return err
	}
	left, err := mountsUnder(abs)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted inside it: %s", abs, strings.Join(left, ", "))
	}
	return removeAllParallel(abs, removeWorkers)
}

// removeWorkers is how many files removeAllParallel unlinks at once.
const removeWorkers = 32

// removeAllParallel removes dir like os.RemoveAll, but unlinks its files
// from several goroutines. A KIWI image root is some 15,000 files; on a
// filesystem mounted with -o discard each unlink waits for the journal,
// and one at a time (rm -rf, os.RemoveAll) they took 17 s here against
// under 2 s with 32 at once, which lets many unlinks share a commit.
// Symbolic links are removed, never followed. Whatever is left after the
// parallel pass (files created meanwhile) is removed by os.RemoveAll, whose
// error is returned.
func removeAllParallel(dir string, workers int) error {
	files := make(chan string, 256)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range files {
				os.Remove(p) // errors surface in the final RemoveAll
			}
		}()
	}
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // unreadable: left to RemoveAll
		case d.IsDir():
			dirs = append(dirs, p)
		default:
			files <- p
		}
		return nil
	})
	close(files)
	wg.Wait()
	for i := len(dirs) - 1; i >= 0; i-- { // WalkDir lists parents first
		os.Remove(dirs[i])
	}
	return os.RemoveAll(dir)
}

// mount is one line of /proc/self/mountinfo: where, and what is mounted.
type mount struct{ point, source string }

// readMounts parses mountinfo:
// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
func readMounts() ([]mount, error) {
	data, err := os.ReadFile(mountInfoPath)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		m := mount{point: unescapeMount(f[4])}
		for i := 6; i+2 < len(f); i++ {
			if f[i] == "-" {
				m.source = unescapeMount(f[i+2])
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// mountPoints returns the mount points for which match is true, deepest
// first.
func mountPoints(match func(mount) bool) ([]string, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		if match(m) {
			out = append(out, m.point)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out, nil
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	return mountPoints(func(m mount) bool { return m.point == dir || strings.HasPrefix(m.point, dir+"/") })
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// loop is an attached loop device and its backing file.
type loop struct{ name, backing string }

// loopsUnder lists the loop devices whose backing file lies under dir
// (also when the file has been deleted since).
func loopsUnder(dir string) []loop {
	entries, err := os.ReadDir(sysBlockPath)
	if err != nil {
		return nil // no sysfs: nothing we can see
	}
	var out []loop
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sysBlockPath, e.Name(), "loop", "backing_file"))
		if err != nil {
			continue // not attached
		}
		backing := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if backing == dir || strings.HasPrefix(backing, dir+"/") {
			out = append(out, loop{e.Name(), backing})
		}
	}
	return out
}

// mountsOfDevices lists the mount points, deepest first, whose source is
// one of the loop devices or a partition of one (/dev/loop0, /dev/loop0p1).
func mountsOfDevices(loops []loop) ([]string, error) {
	if len(loops) == 0 {
		return nil, nil
	}
	return mountPoints(func(m mount) bool {
		for _, l := range loops {
			dev := "/dev/" + l.name
			if m.source == dev || strings.HasPrefix(m.source, dev+"p") && isDigits(m.source[len(dev)+1:]) {
				return true
			}
		}
		return false
	})
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// detachLoops detaches the loop devices.
func detachLoops(loops []loop) error {
	for _, l := range loops {
		dev := "/dev/" + l.name
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			return fmt.Errorf("detach %s (backed by %s, left by KIWI): %v: %s", dev, l.backing, err, bytes.TrimSpace(out))
		}
	}
	return nil
}
