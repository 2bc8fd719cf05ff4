package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
)

func init() {
	// oci-push REPO DIR COMPRESSION: the four manifests of the oci suite
	// (amd64 and arm64 x virtualization and baremetal) from DIR's files,
	// with the sha256 sums the builder recorded (DIR/NAME.sha256), pushed as
	// osimage-oci does: blobs once, per-boot-mode indexes, per-arch tags.
	ops["oci-push"] = func(a []string) error {
		var es []ociimage.Entry
		file := func(name, role string) (artifact.File, error) {
			p := filepath.Join(a[1], name)
			sum, err := os.ReadFile(p + ".sha256")
			if err != nil {
				return artifact.File{}, err
			}
			st, err := os.Stat(p)
			if err != nil {
				return artifact.File{}, err
			}
			return artifact.File{Path: p, Role: role, SHA256: strings.TrimSpace(string(sum)), Size: st.Size()}, nil
		}
		for _, arch := range []string{"amd64", "arm64"} {
			var fs []artifact.File
			for _, f := range [][2]string{{"rootfs-" + arch, artifact.RoleRootfs}, {"kernel-" + arch, artifact.RoleKernel}, {"initramfs-" + arch, artifact.RoleInitrd}} {
				af, err := file(f[0], f[1])
				if err != nil {
					return err
				}
				fs = append(fs, af)
			}
			es = append(es,
				ociimage.Entry{Arch: arch, BootMode: ociimage.Virtualization, Files: fs[:1], KernelCmdline: "console=ttyS0"},
				ociimage.Entry{Arch: arch, BootMode: ociimage.Baremetal, Files: fs, KernelCmdline: "console=ttyS0"})
		}
		p, err := ociimage.NewPlan(es, ociimage.Options{ImageName: "bench", Version: "1.0", ArchTags: true, Compression: a[2],
			Created: time.Unix(0, 0), WorkDir: a[1]})
		if err != nil {
			return err
		}
		defer p.Close()
		res, err := ociimage.Publish(context.Background(), p, ociimage.Destination{Repository: a[0], LockDir: a[1]})
		if err != nil {
			return err
		}
		fmt.Printf("blobs-sent: %d\n", res.BlobsSent)
		return nil
	}
}
