// Package vhd is the Packer glue of the osimage-vhd post-processor: it reads
// the incoming artifact, finds its disk by role and hands it to internal/vhd.
package vhd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/diskfmt"
	"github.com/osimage/packer-plugin-osimage/internal/packerutil"
	"github.com/osimage/packer-plugin-osimage/internal/qemuimg"
	"github.com/osimage/packer-plugin-osimage/internal/sourcedate"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
	"github.com/osimage/packer-plugin-osimage/internal/vhd"
)

// BuilderID identifies artifacts of this post-processor.
const BuilderID = "osimage.post-processor.vhd"

var _ packersdk.Artifact = (*artifact.Artifact)(nil)

// PostProcessor converts raw disks to fixed VHDs.
type PostProcessor struct {
	config Config
}

func (p *PostProcessor) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

func (p *PostProcessor) Configure(raws ...interface{}) error { return p.config.Prepare(raws...) }

func (p *PostProcessor) PostProcess(ctx context.Context, ui packersdk.Ui, in packersdk.Artifact) (packersdk.Artifact, bool, bool, error) {
	a, err := artifact.From(in)
	if err != nil {
		return nil, false, false, err
	}
	p.config.ApplyVariant(a)
	// The VHD feeds the gallery: with a release state that has the
	// variant published already, it is not needed.
	if !a.Variant.StepPending(variant.StepPublish) {
		ui.Sayf("%s: publish is not pending (release state), no VHD needed", a.Variant.Key)
		return a, true, false, nil
	}
	disk, err := pickDisk(a)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-vhd: %w", err)
	}
	src := disk.Path
	format, err := diskfmt.Detect(src)
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-vhd: input disk: %w", err)
	}

	signer := p.config.Signer()
	// A signature signs the VHD's SHA-256, taken in the copy pass.
	opts := vhd.Options{Force: p.config.Force, MD5: p.config.wants("md5"), SHA256: p.config.wants("sha256") || signer != nil}
	// The same disk gives the same VHD: the footer's unique id comes from
	// the disk's recorded sha256 and its timestamp from SOURCE_DATE_EPOCH.
	if disk.SHA256 != "" {
		opts.Identity = "sha256:" + disk.SHA256
	}
	stamp, err := sourcedate.Time(os.Getenv, time.Now())
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-vhd: %w", err)
	}
	opts.Now = func() time.Time { return stamp }
	progress := packerutil.NewProgress(ui, filepath.Base(src))
	defer progress.Close()
	opts.Progress = progress.Update

	var res vhd.Result
	if p.config.InPlace {
		if format != diskfmt.Raw && format != diskfmt.VPC {
			return nil, false, false, fmt.Errorf("osimage-vhd: in_place needs a raw disk, but %s is %s; leave in_place unset to convert it into a new file", src, format)
		}
		ui.Sayf("Converting %s to a fixed VHD in place", src)
		res, err = vhd.ConvertInPlace(ctx, src, opts)
	} else {
		dst, rerr := p.outputPath(a, src)
		if rerr != nil {
			return nil, false, false, rerr
		}
		if format != diskfmt.Raw && format != diskfmt.VPC || format == diskfmt.VPC && !isFixedVHD(src) {
			tmp, cerr := p.toRaw(ctx, ui, src, format, dst)
			if cerr != nil {
				return nil, false, false, cerr
			}
			defer os.Remove(tmp)
			src = tmp
		}
		ui.Sayf("Writing fixed VHD %s", dst)
		res, err = vhd.Convert(ctx, src, dst, opts)
		if err == nil && res.PassedThrough {
			res.Path = disk.Path
		}
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("osimage-vhd: %w", err)
	}
	if res.PassedThrough {
		ui.Sayf("%s already is a fixed VHD of %d MiB; passed through unchanged", res.Path, res.VirtualSize>>20)
	} else {
		ui.Sayf("Wrote %s: virtual size %d bytes (%d MiB), %d bytes of data copied",
			res.Path, res.VirtualSize, res.VirtualSize>>20, res.Copy.DataWritten)
	}
	if res.VirtualSize < vhd.MinRecommendedSize {
		ui.Errorf("Warning: %s is smaller than 20 MiB, the smallest disk Azure accepts for upload", res.Path)
	}

	out := a.Clone()
	out.Builder = BuilderID
	out.ID = res.Path
	vf := artifact.File{Path: res.Path, Role: artifact.RoleVHD, Format: diskfmt.VPC, Size: res.VirtualSize + vhd.FooterSize, MD5: res.MD5, SHA256: res.SHA256}
	// In place, or passed through, the input file itself is the VHD.
	inputIsOutput := p.config.InPlace || res.PassedThrough
	if inputIsOutput {
		for i := range out.Outputs {
			if out.Outputs[i].Path == disk.Path {
				out.Outputs[i] = vf
			}
		}
	} else {
		out.Outputs = append(out.Outputs, vf)
		out.Owned = []string{res.Path}
	}
	if out.Extra == nil {
		out.Extra = map[string]string{}
	}
	out.Extra["vhd_path"] = res.Path
	out.Extra["vhd_virtual_size"] = strconv.FormatInt(res.VirtualSize, 10)
	if res.MD5 != "" {
		out.Extra["vhd_md5"] = res.MD5
	}
	if res.SHA256 != "" {
		out.Extra["vhd_sha256"] = res.SHA256
	}
	if signer != nil {
		sig, err := signer.SignSHA256(res.SHA256)
		if err == nil {
			err = os.WriteFile(res.Path+".sig", []byte(sig), 0o644)
		}
		if err != nil {
			return nil, false, false, fmt.Errorf("osimage-vhd: signature of %s: %w", res.Path, err)
		}
		out.Outputs = append(out.Outputs, artifact.File{Path: res.Path + ".sig", Role: artifact.RoleSig})
		out.Owned = append(out.Owned, res.Path+".sig")
		out.Extra["vhd_signature"] = res.Path + ".sig"
		ui.Sayf("Signed %s: %s.sig (cosign verify-blob --key <public key> --signature %s.sig --insecure-ignore-tlog %s)", res.Path, res.Path, res.Path, res.Path)
	}
	// Keep the input: later post-processors (OCI) need the raw disk. When the
	// input file is the VHD, deleting the input would delete the output, so
	// that keep cannot be overridden.
	return out, true, inputIsOutput, nil
}

// pickDisk returns the disk to convert: the raw disk by role, or a VHD the
// input already carries.
func pickDisk(a *artifact.Artifact) (artifact.File, error) {
	if ds := a.ByRole(artifact.RoleDisk); len(ds) > 0 {
		return a.One(artifact.RoleDisk)
	}
	return a.One(artifact.RoleVHD)
}

func isFixedVHD(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	_, ft, err := vhd.Inspect(f)
	return err == nil && ft != nil
}

// outputPath renders the output template, or derives it from the input.
func (p *PostProcessor) outputPath(a *artifact.Artifact, src string) (string, error) {
	if p.config.Output == "" {
		ext := filepath.Ext(src)
		switch strings.ToLower(ext) {
		case ".raw", ".img", ".qcow2", ".vmdk", ".vhdx", ".vhd":
			return strings.TrimSuffix(src, ext) + ".vhd", nil
		}
		return src + ".vhd", nil
	}
	ictx := p.config.ctx
	data := map[string]string{}
	for _, f := range a.Variant.Fields() {
		data[f.Name] = f.Value
	}
	data["BuildName"] = p.config.PackerBuildName
	data["BuilderType"] = p.config.PackerBuilderType
	data["InputDir"] = filepath.Dir(src)
	ictx.Data = data
	out, err := interpolate.Render(p.config.Output, &ictx)
	if err != nil {
		return "", fmt.Errorf("osimage-vhd: output %q: %w", p.config.Output, err)
	}
	return out, nil
}

// toRaw converts a non-raw input with qemu-img into a hidden temporary
// file next to the output.
func (p *PostProcessor) toRaw(ctx context.Context, ui packersdk.Ui, src, format, dst string) (string, error) {
	ui.Sayf("%s is %s; converting it to raw with qemu-img first", src, format)
	progress := packerutil.NewProgress(ui, "qemu-img convert "+filepath.Base(src))
	defer progress.Close()
	tmp, err := qemuimg.ToRaw(ctx, p.config.QemuImgPath, src, format, filepath.Dir(dst), progress.Update)
	if err != nil {
		return "", fmt.Errorf("osimage-vhd: %w", err)
	}
	return tmp, nil
}
