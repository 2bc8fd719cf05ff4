// Package ociimage publishes OS images as OCI indexes in the ironcore-image
// format: one manifest per (architecture, boot mode), file-backed layers that
// stream from disk under the digest the builder already computed, indexes
// planned as data and merged into what a tag already holds, pushed to a
// registry with go-containerregistry's remote package or written to an OCI
// image layout directory.
//
// Design choice: plan first, then one function does the I/O (as
// go-containerregistry's mutate/remote split); the platform stays
// {os, architecture} and the boot mode travels in annotations, so ironcore,
// containerd and crane clients all still match.
//
// The package imports nothing from Packer.
package ociimage

import (
	"errors"
	"fmt"
	"strings"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Media types of ironcore-image (ironcore-dev/ironcore-image image.go).
const (
	MediaTypeConfig    = "application/vnd.ironcore.image.config.v1+json"
	MediaTypeRootfs    = "application/vnd.ironcore.image.rootfs"
	MediaTypeKernel    = "application/vnd.ironcore.image.kernel"
	MediaTypeInitramfs = "application/vnd.ironcore.image.initramfs"
	MediaTypeSquashfs  = "application/vnd.ironcore.image.squashfs"
	MediaTypeUKI       = "application/vnd.ironcore.image.uki"
)

// Boot modes (the variant's platform).
const (
	Virtualization = "virtualization"
	Baremetal      = "baremetal"
)

// Roles beyond internal/artifact's that become layers when an artifact has them.
const (
	RoleSquashfs = "squashfs"
	RoleUKI      = "uki"
)

// Annotation keys. The boot mode, arch, image name, version and source
// revision go on both the manifest and its index descriptor.
const (
	AnnotationBootMode = "io.ironcore.image.variant"
	AnnotationImage    = "io.ironcore.image.name"
	AnnotationArch     = "io.ironcore.image.architecture"
	// Un-namespaced keys that ironcore-image's OCI-SPEC.md shows on manifests.
	AnnotationSpecVariant = "variant"
	AnnotationSpecArch    = "architecture"

	AnnotationTitle    = "org.opencontainers.image.title"
	AnnotationVersion  = "org.opencontainers.image.version"
	AnnotationRevision = "org.opencontainers.image.revision"
	AnnotationCreated  = "org.opencontainers.image.created"
	AnnotationRefName  = "org.opencontainers.image.ref.name"
)

// Compression of layers.
const (
	CompressionNone = "none" // raw file bytes: what ironcore-image expects
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Errors callers can test with errors.Is.
var (
	ErrMissingRole   = errors.New("missing file role")
	ErrUnknownArch   = errors.New("unknown architecture")
	ErrNotAnIndex    = errors.New("tag holds something other than an image index")
	ErrCorruptIndex  = errors.New("corrupt image index")
	ErrUnauthorized  = errors.New("registry refused the credentials")
	ErrUnreachable   = errors.New("registry unreachable")
	ErrForeignEntry  = errors.New("index entry not written by osimage-oci")
	ErrLostRace      = errors.New("index entries lost to concurrent writers")
	ErrBadTag        = errors.New("invalid tag")
	ErrBadDigest     = errors.New("file does not match its recorded sha256")
	ErrBadCompressor = errors.New("unknown compression")
	ErrTagConflict   = errors.New("tag holds another build's manifest")
	ErrImmutableTag  = errors.New("registry refuses to overwrite the tag (immutable tags)")
	ErrTooLarge      = errors.New("layer larger than the registry accepts")
)

// OCIArch returns the OCI spelling (amd64, arm64) of an architecture given
// in any spelling the project accepts (internal/variant's one table).
func OCIArch(arch string) (string, error) {
	canonical, err := variant.NormalizeArch(arch)
	if err != nil {
		return "", unknownArchError{err}
	}
	if o := variant.OCIArch(canonical); o != "" {
		return o, nil
	}
	return "", unknownArchError{fmt.Errorf("architecture %q has no OCI name", arch)}
}

// unknownArchError keeps variant's message and is ErrUnknownArch.
type unknownArchError struct{ err error }

func (e unknownArchError) Error() string        { return e.err.Error() }
func (e unknownArchError) Unwrap() error        { return e.err }
func (e unknownArchError) Is(target error) bool { return target == ErrUnknownArch }

// Entry is one build's contribution: the files of one architecture and boot
// mode. Files carry roles as in internal/artifact; a file's SHA256 and Size,
// when set, are trusted (the builder computed them) and the file is not
// hashed again.
type Entry struct {
	Arch     string // amd64/x86_64 or arm64/aarch64
	BootMode string // virtualization or baremetal
	Files    []artifact.File
	// KernelCmdline is the command line for the config blob when Files has
	// no cmdline file.
	KernelCmdline string
	// Key names the entry in errors (the variant key); optional.
	Key string
}

func (e Entry) name() string {
	if e.Key != "" {
		return e.Key
	}
	return e.Arch + "/" + e.BootMode
}

func describeFiles(fs []artifact.File) string {
	if len(fs) == 0 {
		return "no files"
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%s (%s)", f.Path, f.Role)
	}
	return strings.Join(parts, ", ")
}
