package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Local is a recorded file found (or not) on this machine.
type Local struct {
	File
	Path string // empty when the file is not here (or differs)
	Why  string // why it is not used, when Path is empty
}

// FindLocal looks for the recorded files of a build in dir: a file counts
// when its size and (verify) its sha256 match the record; otherwise it is
// reported missing with the reason. The files are hashed in parallel.
func FindLocal(ctx context.Context, d *Doc, dir string, verify bool) []Local {
	out := make([]Local, len(d.Files))
	var wg sync.WaitGroup
	for i, f := range d.Files {
		out[i] = Local{File: f}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, f.Name)
			st, err := os.Stat(p)
			switch {
			case err != nil:
				out[i].Why = "not in " + dir
				return
			case f.Size > 0 && st.Size() != f.Size:
				out[i].Why = fmt.Sprintf("%s has %d bytes, the build recorded %d", p, st.Size(), f.Size)
				return
			}
			if verify && f.SHA256 != "" {
				sum, err := fileSHA256(ctx, p)
				if err != nil {
					out[i].Why = err.Error()
					return
				}
				if sum != f.SHA256 {
					out[i].Why = fmt.Sprintf("%s has sha256 %s, the build recorded %s", p, sum, f.SHA256)
					return
				}
			}
			out[i].Path = p
		}()
	}
	wg.Wait()
	return out
}

func fileSHA256(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
