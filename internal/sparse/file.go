package sparse

import (
	"context"
	"fmt"
	"os"
)

// CopyFile copies the file src into the new file dst, which must not
// exist, the way Copy does: only data extents are read, holes and all-zero
// blocks stay holes, hashes see every byte. opts.Progress gets bytes done
// (of src's size). On any error, dst is removed.
func CopyFile(ctx context.Context, src, dst string, opts CopyOptions) (Stats, error) {
	in, err := os.Open(src)
	if err != nil {
		return Stats{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return Stats{}, err
	}
	stats, err := Copy(ctx, out, in, opts)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return stats, err
	}
	return stats, nil
}

// HashFile feeds the first opts.Size bytes of f (all of it when 0) to
// opts.Hashes, reading only its data extents: holes are hashed as zeros
// without being read.
func HashFile(ctx context.Context, f *os.File, opts CopyOptions) (Stats, error) {
	stats, err := Copy(ctx, nil, f, opts)
	if err != nil {
		return stats, fmt.Errorf("checksum %s: %w", f.Name(), err)
	}
	return stats, nil
}
