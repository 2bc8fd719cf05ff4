// Package qemuimg runs qemu-img for the formats this plugin does not read
// itself (qcow2, vmdk, vhdx, dynamic VHD).
package qemuimg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Look finds the qemu-img binary or explains how to get it.
func Look(bin string) (string, error) {
	if bin == "" {
		bin = "qemu-img"
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s not found: install qemu-img (Debian/Ubuntu: apt-get install qemu-utils; Fedora: dnf install qemu-img; macOS: brew install qemu) or set qemu_img_path", bin)
	}
	return p, nil
}

// ToRaw converts src (in the given qemu-img format) into a new sparse raw
// file in dir and returns its path. The caller removes it. On failure or
// cancellation nothing is left behind.
func ToRaw(ctx context.Context, bin, src, format, dir string) (string, error) {
	p, err := Look(bin)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(src)+".raw-*")
	if err != nil {
		return "", fmt.Errorf("temporary raw disk in %s: %w", dir, err)
	}
	tmp := f.Name()
	f.Close()
	cmd := exec.CommandContext(ctx, p, "convert", "-f", format, "-O", "raw", "-S", "4k", src, tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", ctxErr
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("qemu-img convert -f %s -O raw %s: exit %d: %s", format, src, ee.ExitCode(), strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("qemu-img convert %s: %w", src, err)
	}
	return tmp, nil
}
