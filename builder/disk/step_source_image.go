package disk

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/diskfmt"
	"github.com/osimage/packer-plugin-osimage/internal/packerutil"
	"github.com/osimage/packer-plugin-osimage/internal/qemuimg"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

// StepSourceImage copies `source_image` into the output directory as the
// raw disk: a sparse copy for raw sources (holes and all-zero blocks are
// not written), `qemu-img convert` for the others. A given checksum is
// computed while copying (for raw sources; for others before converting,
// since it is the checksum of the source file) and a mismatch fails the
// build. Cleanup removes the partial disk when the build fails or is
// cancelled.
type StepSourceImage struct {
	disk string
}

func (s *StepSourceImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get(StateConfig).(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	out := getOutputs(state)
	fail := func(err error) multistep.StepAction { return halt(state, ui, err) }
	format, _ := state.Get(StateSourceFormat).(string)
	want, hasSum := state.Get(StateSourceChecksum).(checksum)
	src := c.SourceImage
	s.disk = filepath.Join(c.OutputDirectory, c.diskName)
	f := artifact.File{Path: s.disk, Role: artifact.RoleDisk, Format: diskfmt.Raw}

	if format == diskfmt.Raw {
		ui.Sayf("Copying %s to %s (sparse)", src, s.disk)
		progress := packerutil.NewProgress(ui, filepath.Base(src))
		var hashes []io.Writer
		h := want.newHash()
		if hasSum {
			hashes = append(hashes, h)
		}
		stats, err := copyRaw(ctx, src, s.disk, progress.Update, hashes...)
		progress.Close()
		if err != nil {
			return fail(fmt.Errorf("copy source_image: %w", err))
		}
		ui.Sayf("Copied %d bytes: %d bytes of data written, %d in holes, %d all-zero bytes left as holes",
			stats.Size, stats.DataWritten, stats.HoleBytes, stats.ZeroSkipped)
		if hasSum {
			sum := h.Sum(nil)
			if err := want.verify(src, sum); err != nil {
				return fail(err)
			}
			ui.Sayf("Source image %s verified", want.Algo)
			if want.Algo == "sha256" { // the copy has the same bytes
				f.SHA256 = want.Hex
			}
		}
	} else {
		if hasSum {
			ui.Sayf("Verifying the %s of %s", want.Algo, src)
			h := want.newHash()
			progress := packerutil.NewProgress(ui, "verify "+filepath.Base(src))
			_, err := hashFile(ctx, src, progress.Update, h)
			progress.Close()
			if err != nil {
				return fail(err)
			}
			if err := want.verify(src, h.Sum(nil)); err != nil {
				return fail(err)
			}
		}
		ui.Sayf("Converting %s (%s) to the raw disk %s with qemu-img", src, format, s.disk)
		progress := packerutil.NewProgress(ui, filepath.Base(src))
		err := qemuimg.ConvertToRaw(ctx, c.QemuImgPath, src, format, s.disk, progress.Update)
		progress.Close()
		if err != nil {
			return fail(fmt.Errorf("convert source_image: %w", err))
		}
	}
	out.add(f)
	putGenerated(state, "DiskPath", s.disk)
	return multistep.ActionContinue
}

func (s *StepSourceImage) Cleanup(state multistep.StateBag) {
	if s.disk != "" && halted(state) {
		os.Remove(s.disk)
	}
}

// copyRaw copies the raw disk src into a new file dst (which must not
// exist): only data extents are read, holes and all-zero blocks are left as
// holes, and hashes see every byte. On error dst is removed.
func copyRaw(ctx context.Context, src, dst string, progress func(done, total int64), hashes ...io.Writer) (sparse.Stats, error) {
	st, err := os.Stat(src)
	if err != nil {
		return sparse.Stats{}, err
	}
	opts := sparse.CopyOptions{Hashes: hashes}
	if progress != nil {
		opts.Progress = func(done int64) { progress(done, st.Size()) }
	}
	return sparse.CopyFile(ctx, src, dst, opts)
}

// hashFile feeds a file's bytes to hashes, reading only its data extents
// (holes are hashed as zeros without reading them).
func hashFile(ctx context.Context, path string, progress func(done, total int64), hashes ...io.Writer) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() == 0 {
		return 0, nil
	}
	opts := sparse.CopyOptions{Hashes: hashes}
	if progress != nil {
		total := st.Size()
		opts.Progress = func(done int64) { progress(done, total) }
	}
	stats, err := sparse.HashFile(ctx, f, opts)
	return stats.Size, err
}
