package ociimage

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
)

// Layer is one blob of a manifest, backed by a file on disk.
type Layer struct {
	Role      string // rootfs, kernel, initrd, squashfs, uki
	MediaType string
	Title     string // org.opencontainers.image.title of the layer
	Source    string // the artifact's file
	Path      string // the file streamed: Source, or its compressed copy
	Digest    v1.Hash
	Size      int64
}

// layerSpec is a layer before its digest is known.
type layerSpec struct {
	Role, MediaType, Title string
	File                   artifact.File
}

// selectLayers picks the files a boot mode's manifest needs, by role, in
// manifest order, and the cmdline file if any. It does no I/O.
//
// virtualization: rootfs = the raw disk (what IronCore's os-images publishes
// as -kvm), else the rootfs file. baremetal: kernel, initramfs, then rootfs
// and/or squashfs (at least one), then a UKI when the artifact has one.
func selectLayers(e Entry) ([]layerSpec, *artifact.File, error) {
	a := artifact.Artifact{Builder: e.name(), Outputs: e.Files}
	one := func(role string) (*artifact.File, error) {
		fs := a.ByRole(role)
		switch len(fs) {
		case 0:
			return nil, nil
		case 1:
			return &fs[0], nil
		}
		return nil, fmt.Errorf("%s: %d files with role %s (%s); expected at most one", e.name(), len(fs), role, describeFiles(e.Files))
	}
	missing := func(what string) error {
		return fmt.Errorf("%s: a %s manifest needs %s; the artifact holds %s: %w", e.name(), e.BootMode, what, describeFiles(e.Files), ErrMissingRole)
	}
	cmdline, err := one(artifact.RoleCmdline)
	if err != nil {
		return nil, nil, err
	}
	var out []layerSpec
	add := func(f *artifact.File, role, mt string) {
		out = append(out, layerSpec{Role: role, MediaType: mt, Title: role, File: *f})
	}
	switch e.BootMode {
	case Virtualization:
		disk, err := one(artifact.RoleDisk)
		if err != nil {
			return nil, nil, err
		}
		rootfs, err := one(artifact.RoleRootfs)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case disk != nil && (disk.Format == "" || disk.Format == "raw"):
			add(disk, artifact.RoleRootfs, MediaTypeRootfs)
		case rootfs != nil:
			add(rootfs, artifact.RoleRootfs, MediaTypeRootfs)
		case disk != nil:
			return nil, nil, fmt.Errorf("%s: the virtualization rootfs layer is a raw disk, but %s is %s (convert it to raw first): %w", e.name(), disk.Path, disk.Format, ErrMissingRole)
		default:
			return nil, nil, missing("a raw disk (file role disk) or a rootfs file (file role rootfs)")
		}
	case Baremetal:
		kernel, err := one(artifact.RoleKernel)
		if err != nil {
			return nil, nil, err
		}
		initrd, err := one(artifact.RoleInitrd)
		if err != nil {
			return nil, nil, err
		}
		rootfs, err := one(artifact.RoleRootfs)
		if err != nil {
			return nil, nil, err
		}
		squashfs, err := one(RoleSquashfs)
		if err != nil {
			return nil, nil, err
		}
		uki, err := one(RoleUKI)
		if err != nil {
			return nil, nil, err
		}
		if kernel == nil {
			return nil, nil, missing("a kernel (file role kernel)")
		}
		if initrd == nil {
			return nil, nil, missing("an initramfs (file role initrd)")
		}
		if rootfs == nil && squashfs == nil {
			return nil, nil, missing("a root filesystem (file role rootfs or squashfs)")
		}
		add(kernel, artifact.RoleKernel, MediaTypeKernel)
		add(initrd, "initramfs", MediaTypeInitramfs)
		if rootfs != nil {
			add(rootfs, artifact.RoleRootfs, MediaTypeRootfs)
		}
		if squashfs != nil {
			add(squashfs, RoleSquashfs, MediaTypeSquashfs)
		}
		if uki != nil {
			add(uki, RoleUKI, MediaTypeUKI)
		}
	default:
		return nil, nil, fmt.Errorf("%s: boot mode (platform) %q: want %q or %q", e.name(), e.BootMode, Virtualization, Baremetal)
	}
	return out, cmdline, nil
}

// compressionSuffix returns the media type suffix of a compression.
func compressionSuffix(c string) (string, error) {
	switch c {
	case "", CompressionNone:
		return "", nil
	case CompressionGzip:
		return "+gzip", nil
	case CompressionZstd:
		return "+zstd", nil
	}
	return "", fmt.Errorf("compression %q: %w (want none, gzip or zstd)", c, ErrBadCompressor)
}

// layerPreparer turns specs into layers: it trusts recorded digests, hashes
// files that have none (once each), and compresses into workDir (once per
// source file).
type layerPreparer struct {
	compression string
	workDir     string
	done        map[string]Layer // by source path
	temps       []string
}

func (p *layerPreparer) cleanup() {
	for _, t := range p.temps {
		os.Remove(t)
	}
	p.temps = nil
}

func (p *layerPreparer) prepare(s layerSpec) (Layer, error) {
	suffix, err := compressionSuffix(p.compression)
	if err != nil {
		return Layer{}, err
	}
	l := Layer{Role: s.Role, MediaType: s.MediaType + suffix, Title: s.Title, Source: s.File.Path}
	if prev, ok := p.done[s.File.Path]; ok {
		l.Path, l.Digest, l.Size = prev.Path, prev.Digest, prev.Size
		return l, nil
	}
	st, err := os.Stat(s.File.Path)
	if err != nil {
		return Layer{}, fmt.Errorf("%s file: %w", s.File.Role, err)
	}
	if !st.Mode().IsRegular() {
		return Layer{}, fmt.Errorf("%s file %s is not a regular file", s.File.Role, s.File.Path)
	}
	if s.File.Size != 0 && s.File.Size != st.Size() {
		return Layer{}, fmt.Errorf("%s file %s has %d bytes, but the artifact recorded %d: %w", s.File.Role, s.File.Path, st.Size(), s.File.Size, ErrBadDigest)
	}
	if suffix == "" {
		l.Path, l.Size = s.File.Path, st.Size()
		if s.File.SHA256 != "" {
			h, err := v1.NewHash("sha256:" + strings.TrimPrefix(strings.ToLower(s.File.SHA256), "sha256:"))
			if err != nil {
				return Layer{}, fmt.Errorf("%s file %s: recorded sha256 %q: %w", s.File.Role, s.File.Path, s.File.SHA256, err)
			}
			l.Digest = h
		} else if l.Digest, err = hashFile(s.File.Path); err != nil {
			return Layer{}, err
		}
	} else if l.Path, l.Digest, l.Size, err = p.compress(s.File.Path); err != nil {
		return Layer{}, err
	}
	if p.done == nil {
		p.done = map[string]Layer{}
	}
	p.done[s.File.Path] = l
	return l, nil
}

func hashFile(path string) (v1.Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return v1.Hash{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// compress writes a compressed copy of src into workDir, hashing it on the
// way, with one encoder goroutine per CPU.
func (p *layerPreparer) compress(src string) (string, v1.Hash, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", v1.Hash{}, 0, err
	}
	defer in.Close()
	dir := p.workDir
	if dir == "" {
		dir = os.TempDir()
	}
	out, err := os.CreateTemp(dir, filepath.Base(src)+".*."+p.compression)
	if err != nil {
		return "", v1.Hash{}, 0, fmt.Errorf("compress %s: %w", src, err)
	}
	p.temps = append(p.temps, out.Name())
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	bw := bufio.NewWriterSize(cw, 1<<20)
	if err := compressTo(bw, in, p.compression); err != nil {
		out.Close()
		return "", v1.Hash{}, 0, fmt.Errorf("compress %s: %w", src, err)
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return "", v1.Hash{}, 0, fmt.Errorf("compress %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return "", v1.Hash{}, 0, fmt.Errorf("compress %s: %w", src, err)
	}
	return out.Name(), v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, cw.n, nil
}

// compressTo compresses r into w. Both encoders split the input into fixed
// blocks compressed in parallel, so the output does not depend on timing.
func compressTo(w io.Writer, r io.Reader, compression string) error {
	var enc io.WriteCloser
	switch compression {
	case CompressionGzip:
		gz, err := pgzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		if err := gz.SetConcurrency(1<<20, 2*runtime.NumCPU()); err != nil {
			return err
		}
		enc = gz
	case CompressionZstd:
		// Without concurrent blocks a zstd stream encoder keeps about
		// one core busy whatever its concurrency; with them it compresses
		// fixed-size sections side by side, in order, so the output still
		// does not depend on timing.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(runtime.NumCPU()), zstd.WithConcurrentBlocks(true), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return err
		}
		enc = zw
	default:
		return fmt.Errorf("compression %q: %w", compression, ErrBadCompressor)
	}
	if _, err := io.Copy(enc, r); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// fileLayer is a partial.CompressedLayer over a file: the bytes go out as
// they are, under a digest known in advance, opened anew on every retry.
type fileLayer struct{ l Layer }

func (f fileLayer) Digest() (v1.Hash, error)            { return f.l.Digest, nil }
func (f fileLayer) Size() (int64, error)                { return f.l.Size, nil }
func (f fileLayer) MediaType() (types.MediaType, error) { return types.MediaType(f.l.MediaType), nil }
func (f fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(f.l.Path) }
func (f fileLayer) layer() (v1.Layer, error)            { return partial.CompressedToLayer(f) }
