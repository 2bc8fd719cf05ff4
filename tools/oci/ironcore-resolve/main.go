// Command ironcore-resolve reads an image the way IronCore's consumers do,
// with ironcore-image v0.5.0's own library: it resolves a reference (for an
// index, the entry matching --platform, or the first entry without it),
// runs ironcoreimage.ResolveImage (which rejects unknown layer types),
// downloads every layer and prints what it found as JSON: the manifest
// digest, the config's command line and each role's digest and the sha256
// of the bytes it received. Tests compare that with the files they pushed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	ironcoreimage "github.com/ironcore-dev/ironcore-image"
	"github.com/ironcore-dev/ironcore-image/oci/image"
	"github.com/ironcore-dev/ironcore-image/oci/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type layerOut struct {
	Digest string `json:"digest"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func main() {
	platform := flag.String("platform", "", "os/arch to pick from an index (empty: ironcore-image's default)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ironcore-resolve [--platform os/arch] REF")
		os.Exit(2)
	}
	if err := run(*platform, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "ironcore-resolve:", err)
		os.Exit(1)
	}
}

func run(platform, ref string) error {
	ctx := context.Background()
	var p *ocispec.Platform
	if platform != "" {
		os, arch, ok := strings.Cut(platform, "/")
		if !ok {
			return fmt.Errorf("--platform %q: want os/arch", platform)
		}
		p = &ocispec.Platform{OS: os, Architecture: arch}
	}
	reg, err := remote.DockerRegistryWithPlatform(p)
	if err != nil {
		return err
	}
	img, err := reg.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	res, err := ironcoreimage.ResolveImage(ctx, img)
	if err != nil {
		return err
	}
	out := map[string]any{
		"manifest":    img.Descriptor().Digest.String(),
		"commandLine": res.Config.CommandLine,
	}
	for role, l := range map[string]image.Layer{"rootfs": res.RootFS, "kernel": res.Kernel, "initramfs": res.InitRAMFs, "squashfs": res.SquashFS, "uki": res.UKI} {
		if l == nil {
			continue
		}
		rc, err := l.Content(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
		out[role] = layerOut{Digest: l.Descriptor().Digest.String(), SHA256: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
