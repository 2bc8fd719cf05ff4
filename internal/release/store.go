package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// ErrNotFound: no document at that name.
var ErrNotFound = errors.New("no such state document")

// ErrConflict: the document changed since it was read.
var ErrConflict = errors.New("state document changed since it was read")

// Store keeps documents by name (slash-separated).
type Store interface {
	// Get returns a document and its version (an opaque token for Put);
	// ErrNotFound when there is none.
	Get(ctx context.Context, name string) (data []byte, version string, err error)
	// Put writes a document whole if it still is at version ("": it must
	// not exist yet), ErrConflict otherwise.
	Put(ctx context.Context, name string, data []byte, version string) error
	// List returns the names under prefix (a directory-like prefix ending
	// in "/"), sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// String names the store in messages (never with secrets).
	String() string
}

// Dir is a store in a local directory. Writes go to a temporary file in
// the same directory and are renamed over the document under a lock file
// (gofrs/flock: flock on Unix, LockFileEx on Windows), so readers see the
// old or the new document whole, and two writers on one machine cannot
// both win a compare-and-swap.
type Dir struct {
	Root string
}

func (d Dir) String() string { return d.Root }

func (d Dir) path(name string) (string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || clean != "/"+name || strings.Contains(name, "\\") {
		return "", fmt.Errorf("state document name %q: want a relative slash path without . or .. parts", name)
	}
	return filepath.Join(d.Root, filepath.FromSlash(name)), nil
}

// Get implements Store. The version is the content's sha256.
func (d Dir) Get(_ context.Context, name string) ([]byte, string, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%s in %s: %w", name, d, ErrNotFound)
	}
	if err != nil {
		return nil, "", err
	}
	return b, contentVersion(b), nil
}

func contentVersion(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Put implements Store.
func (d Dir) Put(ctx context.Context, name string, data []byte, version string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	lock := flock.New(filepath.Join(d.Root, ".lock"))
	ok, err := lock.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		return fmt.Errorf("lock %s: %v", lock.Path(), errors.Join(err, ctx.Err()))
	}
	defer lock.Unlock()
	cur, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if version != "" {
			return fmt.Errorf("%s in %s was removed since it was read: %w", name, d, ErrConflict)
		}
	case err != nil:
		return err
	case version == "" || contentVersion(cur) != version:
		return fmt.Errorf("%s in %s: %w", name, d, ErrConflict)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	// On disk before the rename, so a crash leaves the old or the new
	// document, never an empty one.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// List implements Store.
func (d Dir) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	root := filepath.Join(d.Root, filepath.FromSlash(prefix))
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	slices.Sort(out)
	return out, err
}
