package ociimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// record is what builds on this machine last wrote to each index tag of a
// destination, kept next to the destination's lock and read and written
// only under it. A registry may serve a tag's old version for seconds after
// a write (GHCR, ACR, ECR are eventually consistent), so what it serves
// cannot be the only base of a merge: the next build on this machine
// merges with what the machine itself wrote, and no entry is lost however
// stale the registry's answer.
type record struct {
	path string
	Tags map[string]*recordedTag `json:"tags"`
}

type recordedTag struct {
	// Raw is the index last written (or found already written).
	Raw json.RawMessage `json:"raw"`
	// Written are the digests of the indexes written to the tag, oldest
	// first (at most recordHistory): a read that serves one of them but
	// the last is stale.
	Written []string `json:"written"`
}

const recordHistory = 32

// defaultLockDir is a directory of this user's own under the system
// temporary directory: a file another user created cannot block this one,
// and nobody else can read what it records.
func defaultLockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "osimage-oci-"+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("lock directory %s: %w", dir, err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("lock directory %s: %w", dir, err)
	}
	if !st.IsDir() || st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("lock directory %s is %s, want a directory only its owner can use (mode 0700): remove it or set the lock directory", dir, st.Mode())
	}
	return dir, nil
}

func lockDirOr(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return defaultLockDir()
}

func keyFile(dir, key, suffix string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(dir, "osimage-oci-"+hex.EncodeToString(sum[:8])+suffix)
}

// loadRecord reads the record of a destination; none yet is empty.
func loadRecord(dir, key string) (*record, error) {
	dir, err := lockDirOr(dir)
	if err != nil {
		return nil, err
	}
	r := &record{path: keyFile(dir, key, ".json"), Tags: map[string]*recordedTag{}}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("record of %s: %w", key, err)
	}
	if err := json.Unmarshal(b, r); err != nil || r.Tags == nil {
		// A damaged record only loses this machine's memory; the
		// registry and the arch tags still hold every entry.
		r.Tags = map[string]*recordedTag{}
	}
	return r, nil
}

// entries returns the recorded index of a tag, and whether the registry's
// answer (its digest, "" for nothing) is a stale one: nothing, or an index
// this machine wrote before the last.
func (r *record) entries(tag, served string) (*v1.IndexManifest, bool) {
	rt := r.Tags[tag]
	if rt == nil || len(rt.Raw) == 0 {
		return nil, false
	}
	var idx v1.IndexManifest
	if json.Unmarshal(rt.Raw, &idx) != nil {
		return nil, false
	}
	n := len(rt.Written)
	stale := n > 0 && served != rt.Written[n-1] && (served == "" || slices.Contains(rt.Written[:n-1], served))
	return &idx, stale
}

// set records the index a tag now holds; written says this build wrote it.
func (r *record) set(tag string, raw []byte, written bool) {
	rt := r.Tags[tag]
	if rt == nil {
		rt = &recordedTag{}
		r.Tags[tag] = rt
	}
	rt.Raw = append(json.RawMessage(nil), raw...)
	if written {
		d := digestOf(raw).String()
		rt.Written = append(slices.DeleteFunc(rt.Written, func(s string) bool { return s == d }), d)
		if len(rt.Written) > recordHistory {
			rt.Written = rt.Written[len(rt.Written)-recordHistory:]
		}
	}
}

// save writes the record whole (temp file and rename).
func (r *record) save() error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), ".record-*")
	if err != nil {
		return fmt.Errorf("record %s: %w", r.path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("record %s: %w", r.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record %s: %w", r.path, err)
	}
	return os.Rename(tmp.Name(), r.path)
}
