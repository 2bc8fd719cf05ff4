// Command child runs one of the plugin's own operations for the bench
// driver (../), in a process of its own that links none of the Packer SDK,
// so that "whole process" times are the operation plus a small program's
// start, as for the tools it is compared with. It prints the operation's
// own time ("op-ns: N"), other timings ("NAME-ns: N") and its peak resident
// memory ("hwm-bytes: N").
//
//	child vhd-copy IN OUT | vhd-copy-sums IN OUT | vhd-inplace DISK
//	child disk-copy IN OUT | matrix ROOT WANT-VARIANTS | matrix-warm ROOT WANT-VARIANTS
//	child matrix-floor ROOT
//	child upload RAW CONNECTION-STRING CONTAINER BLOB | md5 FILE
package main

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/azure/pageblob"
	"github.com/osimage/packer-plugin-osimage/internal/imagedef"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
	toml "github.com/pelletier/go-toml/v2"
)

var ops = map[string]func(a []string) error{
	"vhd-copy": func(a []string) error {
		_, err := vhd.Convert(context.Background(), a[0], a[1], vhd.Options{})
		return err
	},
	"vhd-copy-sums": func(a []string) error {
		_, err := vhd.Convert(context.Background(), a[0], a[1], vhd.Options{MD5: true, SHA256: true})
		return err
	},
	"vhd-inplace": func(a []string) error {
		_, err := vhd.ConvertInPlace(context.Background(), a[0], vhd.Options{})
		return err
	},
	// The source_image copy of osimage-disk.
	"disk-copy": func(a []string) error {
		_, err := sparse.CopyFile(context.Background(), a[0], a[1], sparse.CopyOptions{Progress: func(int64) {}})
		return err
	},
	// osimage-gallery's upload of a raw disk as a fixed VHD page blob.
	"upload": func(a []string) error {
		src, err := pageblob.OpenRaw(a[0])
		if err != nil {
			return err
		}
		defer src.Close()
		tg, err := pageblob.NewTarget(pageblob.ClientConfig{ConnectionString: a[1], Container: a[2], BlobName: a[3], CreateContainer: true})
		if err != nil {
			return err
		}
		res, err := pageblob.Upload(context.Background(), tg, src, pageblob.Options{Progress: func(int64, int64) {}})
		if err != nil {
			return err
		}
		fmt.Printf("sent-bytes: %d\nrequests: %d\nmd5: %s\n", res.BytesSent, res.Requests, res.MD5Hex)
		return nil
	},
	// The floor: MD5 of every byte of a file (holes hashed as zeros
	// without reading them), with the plain crypto/md5.
	"md5": func(a []string) error {
		f, err := os.Open(a[0])
		if err != nil {
			return err
		}
		defer f.Close()
		h := md5.New()
		if _, err := sparse.HashFile(context.Background(), f, sparse.CopyOptions{Hashes: []io.Writer{h}}); err != nil {
			return err
		}
		fmt.Printf("md5: %x\n", h.Sum(nil))
		return nil
	},
	// Load and expand, printing both times.
	// matrix-floor is what reading the tree costs without imagedef: every
	// .toml file under ROOT's directory read and decoded by go-toml into a
	// map, one after the other.
	"matrix-floor": func(a []string) error {
		files := 0
		err := filepath.WalkDir(filepath.Dir(a[0]), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(p) != ".toml" {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var m map[string]any
			files++
			return toml.Unmarshal(b, &m)
		})
		fmt.Printf("files: %d\n", files)
		return err
	},
	"matrix": func(a []string) error {
		load, expand, err := loadExpand(a[0], a[1])
		if err != nil {
			return err
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Printf("load-ns: %d\nexpand-ns: %d\nminor-faults: %d\n", load.Nanoseconds(), expand.Nanoseconds(), ru.Minflt)
		return nil
	},
	// matrix-warm loads and expands twice in one process and prints the
	// second run's time: the same work on a heap that has already grown,
	// which tells what the first run pays for fresh memory.
	"matrix-warm": func(a []string) error {
		if _, _, err := loadExpand(a[0], a[1]); err != nil {
			return err
		}
		load, expand, err := loadExpand(a[0], a[1])
		fmt.Printf("second-ns: %d\n", (load + expand).Nanoseconds())
		return err
	},
}

// loadExpand is what the osimage-matrix data source does: imagedef.Load and
// Expand of the tree at root, checking the number of variants.
func loadExpand(root, want string) (load, expand time.Duration, err error) {
	start := time.Now()
	tr, _, err := imagedef.Load(root)
	if err != nil {
		return 0, 0, err
	}
	loaded := time.Now()
	vs, _, err := imagedef.Expand(tr, imagedef.Options{})
	if err != nil {
		return 0, 0, err
	}
	if n, _ := strconv.Atoi(want); len(vs) != n {
		return 0, 0, fmt.Errorf("%d variants, want %d", len(vs), n)
	}
	return loaded.Sub(start), time.Since(loaded), nil
}

func main() {
	if len(os.Args) < 2 || ops[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: child OPERATION ARGS...")
		os.Exit(2)
	}
	if path := os.Getenv("CHILD_CPUPROFILE"); path != "" {
		// A CPU profile of the operation, for finding where its time goes.
		f, err := os.Create(path)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	start := time.Now()
	if err := ops[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	fmt.Printf("op-ns: %d\n", time.Since(start).Nanoseconds())
	PrintHWM()
}

// PrintHWM prints this process's peak resident memory (VmHWM).
func PrintHWM() {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			fmt.Printf("hwm-bytes: %d\n", kb*1024)
		}
	}
}
