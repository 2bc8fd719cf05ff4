// Package qemuimg runs qemu-img for the formats this plugin does not read
// itself (qcow2, vmdk, vhdx, dynamic VHD).
package qemuimg

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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
// file in dir and returns its path; the caller removes it. On failure or
// cancellation nothing is left behind. progress may be nil.
func ToRaw(ctx context.Context, bin, src, format, dir string, progress func(done, total int64)) (string, error) {
	f, err := os.CreateTemp(dir, "."+filepath.Base(src)+".raw-*")
	if err != nil {
		return "", fmt.Errorf("temporary raw disk in %s: %w", dir, err)
	}
	tmp := f.Name()
	f.Close()
	if err := convert(ctx, bin, src, format, tmp, progress); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// ConvertToRaw converts src into the new raw file dst. It writes to a
// hidden temporary name next to dst and renames it when complete, so dst
// never holds a partial disk. progress may be nil.
func ConvertToRaw(ctx context.Context, bin, src, format, dst string, progress func(done, total int64)) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".partial")
	if err := convert(ctx, bin, src, format, tmp, progress); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// convert runs `qemu-img convert -p -O raw` into out (sparse, zero
// detection at 4 KiB), reporting progress in bytes of the virtual size.
func convert(ctx context.Context, bin, src, format, out string, progress func(done, total int64)) error {
	p, err := Look(bin)
	if err != nil {
		return err
	}
	total, err := VirtualSize(ctx, p, src, format)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, p, "convert", "-p", "-f", format, "-O", "raw", "-S", "4k", src, out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p, err)
	}
	readProgress(stdout, func(pct float64) {
		if progress != nil {
			progress(int64(pct/100*float64(total)), total)
		}
	})
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("qemu-img convert -f %s -O raw %s: exit %d: %s", format, src, ee.ExitCode(), strings.TrimSpace(stderr.String()))
		}
		return fmt.Errorf("qemu-img convert %s: %w", src, err)
	}
	if progress != nil {
		progress(total, total)
	}
	return nil
}

// VirtualSize asks qemu-img for the disk's virtual size.
func VirtualSize(ctx context.Context, bin, src, format string) (int64, error) {
	out, err := exec.CommandContext(ctx, bin, "info", "-f", format, "--output=json", src).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("qemu-img info %s: %s", src, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, fmt.Errorf("qemu-img info %s: %w", src, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("qemu-img info %s: %w", src, err)
	}
	return info.VirtualSize, nil
}

var progressRE = regexp.MustCompile(`\((\d+(?:\.\d+)?)/100%\)`)

// readProgress reads qemu-img -p output ("    (12.34/100%)\r") and calls fn
// with each percentage.
func readProgress(r io.Reader, fn func(pct float64)) {
	sc := bufio.NewScanner(r)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		if m := progressRE.FindSubmatch(sc.Bytes()); m != nil {
			if pct, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
				fn(pct)
			}
		}
	}
	io.Copy(io.Discard, r)
}
