package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

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

func init() {
	// oci-floor BASE-URL REPO DIR: the least any client must send: each of
	// DIR's six files once, as one monolithic upload (POST, then PUT with
	// the digest and the whole body), four at a time, with the sha256 sums
	// already known (DIR/NAME.sha256); no manifests, no HEAD checks.
	ops["oci-floor"] = func(a []string) error {
		names := []string{"rootfs-amd64", "rootfs-arm64", "kernel-amd64", "kernel-arm64", "initramfs-amd64", "initramfs-arm64"}
		var g errgroup.Group
		g.SetLimit(4)
		for _, n := range names {
			g.Go(func() error { return floorPut(a[0], a[1], filepath.Join(a[2], n)) })
		}
		return g.Wait()
	}
}

func floorPut(base, repo, path string) error {
	sum, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return err
	}
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s %v", resp.Status, err)
	}
	q := loc.Query()
	q.Set("digest", "sha256:"+strings.TrimSpace(string(sum)))
	loc.RawQuery = q.Encode()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, loc.String(), f)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put %s: %s", path, resp.Status)
	}
	return nil
}
