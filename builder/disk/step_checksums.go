package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/sparse"
)

// stepChecksums computes the SHA-256 and size of every output file whose
// checksum is not known yet (a step that rewrites a file forgets its
// checksum with outputs.changed), several files at a time. It runs last, so
// the checksums describe the files as the artifact hands them on.
type stepChecksums struct{}

func (s *stepChecksums) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	out := getOutputs(state)
	var todo []int
	for i, f := range out.Files {
		if f.SHA256 == "" {
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 {
		ui.Sayf("Computing SHA-256 of %d files", len(todo))
	}
	t0 := time.Now()
	results := make([]artifact.File, len(out.Files))
	errs := make([]error, len(out.Files))
	sem := make(chan struct{}, max(1, runtime.NumCPU()))
	var wg sync.WaitGroup
	for _, i := range todo {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f := out.Files[i]
			h := sha256.New()
			n, err := hashFile(ctx, f.Path, nil, h)
			if err != nil {
				errs[i] = err
				return
			}
			f.Size, f.SHA256 = n, hex.EncodeToString(h.Sum(nil))
			results[i] = f
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return halt(state, err)
	}
	for _, i := range todo {
		out.add(results[i])
	}
	for i, f := range out.Files {
		if f.Size == 0 {
			if st, err := os.Stat(f.Path); err == nil {
				out.Files[i].Size = st.Size()
			}
		}
	}
	if len(todo) > 0 {
		ui.Sayf("Checksums done in %v", time.Since(t0).Round(time.Millisecond))
	}
	if d, ok := out.one(artifact.RoleDisk); ok {
		putGenerated(state, "DiskSHA256", d.SHA256)
	}
	return multistep.ActionContinue
}

func (s *stepChecksums) Cleanup(multistep.StateBag) {}

// hashFile feeds a file's bytes to hashes, reading only its data extents
// (holes are hashed as zeros without reading them), and returns its size.
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
