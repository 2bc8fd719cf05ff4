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

// stepSourceImage copies `source_image` into the output directory as the
// raw disk: a sparse copy for raw sources (holes and all-zero blocks are
// not written), `qemu-img convert` for the others. A given checksum is
// computed while copying (for raw sources; for others before converting,
// since it is the checksum of the source file) and a mismatch fails the
// build. Cleanup removes the partial disk when the build fails or is
// cancelled.
type stepSourceImage struct {
	source  string
	qemuImg string
	disk    string // the raw disk to write, in the output directory

	written bool
}

func (s *stepSourceImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	out := getOutputs(state)
	fail := func(err error) multistep.StepAction { return halt(state, err) }
	format, _ := state.Get(StateSourceFormat).(string)
	want, hasSum := state.Get(StateSourceChecksum).(checksum)
	src := s.source
	s.written = true
	f := artifact.File{Path: s.disk, Role: artifact.RoleDisk, Format: diskfmt.Raw}

	if format == diskfmt.Raw {
		ui.Sayf("Copying %s to %s (sparse)", src, s.disk)
		progress := packerutil.NewProgress(ui, filepath.Base(src))
		var hashes []io.Writer
		h := want.newHash()
		if hasSum {
			hashes = append(hashes, h)
		}
		stats, err := sparse.CopyFile(ctx, src, s.disk, sparse.CopyOptions{Hashes: hashes, Progress: progressOf(src, progress.Update)})
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
		err := qemuimg.ConvertToRaw(ctx, s.qemuImg, src, format, s.disk, progress.Update)
		progress.Close()
		if err != nil {
			return fail(fmt.Errorf("convert source_image: %w", err))
		}
	}
	out.add(f)
	putGenerated(state, "DiskPath", s.disk)
	return multistep.ActionContinue
}

func (s *stepSourceImage) Cleanup(state multistep.StateBag) {
	if s.written && halted(state) {
		os.Remove(s.disk)
	}
}

// progressOf adapts a progress callback over a file's whole size to
// sparse's bytes-done callback (nil when the file cannot be read: the copy
// then reports the error).
func progressOf(path string, progress func(done, total int64)) func(done int64) {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return func(done int64) { progress(done, st.Size()) }
}
