package kiwi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Why a losetup wrapper
//
// KIWI 9.24 attaches the disk with `losetup -f --show FILE` and then maps its
// partitions with `partx --add /dev/loopN` (its default part_mapper). When the
// kernel's loop driver runs with max_part=0 (the module default, and the case
// on these machines), a loop device attached without -P does not accept
// partitions at all, so partx fails with "error adding partition 1"; there
// is no udev/device-mapper to fall back on either. With max_part > 0 the
// kernel scans partitions of every loop device by itself, which is what -P
// asks for, so KIWI works unchanged.
//
// The fix is a `losetup` first in KIWI's PATH that adds -P when --show is
// among the arguments (KIWI's attach call) and runs the real losetup
// unchanged otherwise. It is used only when LosetupWrapperNeeded says so:
// max_part is 0, or the loop module is not loaded yet (it will load with the
// default 0). The wrapper is harmless with max_part > 0, but then it is not
// needed and the plain host tools are the better-trodden path.

// loopMaxPartPath is the loop driver's max_part parameter.
var loopMaxPartPath = "/sys/module/loop/parameters/max_part"

// realLosetupCandidates are where util-linux installs losetup.
var realLosetupCandidates = []string{"/usr/sbin/losetup", "/sbin/losetup", "/usr/bin/losetup", "/bin/losetup"}

// LosetupWrapperNeeded reports whether KIWI needs the losetup wrapper on
// this machine, with the reason.
func LosetupWrapperNeeded() (bool, string, error) {
	data, err := os.ReadFile(loopMaxPartPath)
	if errors.Is(err, fs.ErrNotExist) {
		return true, loopMaxPartPath + " does not exist (loop module not loaded; it loads with max_part=0)", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("read loop driver parameter: %w", err)
	}
	return needsWrapper(string(data))
}

func needsWrapper(maxPart string) (bool, string, error) {
	n, err := strconv.Atoi(strings.TrimSpace(maxPart))
	if err != nil {
		return false, "", fmt.Errorf("loop driver parameter %s: %q is not a number", loopMaxPartPath, strings.TrimSpace(maxPart))
	}
	if n == 0 {
		return true, "loop max_part=0: loop devices get partitions only with losetup -P", nil
	}
	return false, fmt.Sprintf("loop max_part=%d: the kernel scans loop partitions itself", n), nil
}

// LosetupWrapperScript is the wrapper's text for a given real losetup.
func LosetupWrapperScript(realLosetup string) (string, error) {
	if !filepath.IsAbs(realLosetup) || strings.ContainsAny(realLosetup, "'\n") {
		return "", fmt.Errorf("real losetup path %q must be absolute and free of quotes and line breaks", realLosetup)
	}
	return `#!/bin/sh
# Written by packer-plugin-osimage for KIWI: the loop driver has max_part=0,
# so KIWI's "losetup -f --show FILE" gets -P to make partition devices.
real='` + realLosetup + `'
for a in "$@"; do
	if [ "$a" = "--show" ]; then
		exec "$real" -P "$@"
	fi
done
exec "$real" "$@"
`, nil
}

// WriteLosetupWrapper writes an executable `losetup` wrapper into dir
// (created if needed) and returns its path. Put dir first in KIWI's PATH
// (PrependPath) to use it.
func WriteLosetupWrapper(dir string) (string, error) {
	real := ""
	for _, c := range realLosetupCandidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			real = c
			break
		}
	}
	if real == "" {
		return "", fmt.Errorf("losetup not found in %s; install util-linux (mount on Debian)", strings.Join(realLosetupCandidates, ", "))
	}
	script, err := LosetupWrapperScript(real)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("losetup wrapper: %w", err)
	}
	path := filepath.Join(dir, "losetup")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", fmt.Errorf("losetup wrapper: %w", err)
	}
	// WriteFile keeps the mode of an existing file; make sure it runs.
	if err := os.Chmod(path, 0o755); err != nil {
		return "", fmt.Errorf("losetup wrapper: %w", err)
	}
	return path, nil
}
