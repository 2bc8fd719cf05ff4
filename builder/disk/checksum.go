package disk

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
)

// checksum is a parsed `source_image_checksum`.
type checksum struct {
	Algo string // sha256 or sha512
	Hex  string // lower case; empty until a file: spec is resolved
	File string // checksum file for file: specs
}

var hexLen = map[string]int{"sha256": 64, "sha512": 128}

// parseChecksum reads "sha256:HEX", "sha512:HEX", a bare 64-digit hex
// SHA-256, or "file:PATH". It does not read the file.
func parseChecksum(spec string) (checksum, error) {
	s := strings.TrimSpace(spec)
	if p, ok := strings.CutPrefix(s, "file:"); ok {
		if p == "" {
			return checksum{}, errors.New(`"file:" needs a path`)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return checksum{}, err
		}
		if _, err := os.Stat(abs); err != nil {
			return checksum{}, err
		}
		return checksum{File: abs}, nil
	}
	algo, value, ok := strings.Cut(s, ":")
	if !ok {
		algo, value = "sha256", s
	}
	algo = strings.ToLower(algo)
	n, known := hexLen[algo]
	if !known {
		return checksum{}, fmt.Errorf("%q: unknown algorithm %q; want sha256:HEX, sha512:HEX or file:PATH", spec, algo)
	}
	value = strings.ToLower(value)
	if len(value) != n || !isHex(value) {
		return checksum{}, fmt.Errorf("%q: a %s is %d hex digits", spec, algo, n)
	}
	return checksum{Algo: algo, Hex: value}, nil
}

// resolve reads a file: spec and picks the line for image (by base name),
// or the only line. Hex specs are returned unchanged.
func (c checksum) resolve(image string) (checksum, error) {
	if c.File == "" {
		return c, nil
	}
	data, err := os.ReadFile(c.File)
	if err != nil {
		return c, fmt.Errorf("source_image_checksum: %w", err)
	}
	type entry struct{ name, hex string }
	var entries []entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// BSD: "SHA256 (name) = hex"
		if i := strings.Index(line, ") = "); i > 0 && strings.Contains(line[:i], " (") {
			j := strings.Index(line, " (")
			entries = append(entries, entry{line[j+2 : i], strings.TrimSpace(line[i+4:])})
			continue
		}
		// GNU: "hex  name" or "hex *name"; or a bare hex.
		f := strings.Fields(line)
		name := ""
		if len(f) > 1 {
			name = strings.TrimPrefix(strings.Join(f[1:], " "), "*")
		}
		entries = append(entries, entry{name, f[0]})
	}
	want := filepath.Base(image)
	var pick *entry
	for i := range entries {
		if entries[i].name != "" && filepath.Base(entries[i].name) == want {
			pick = &entries[i]
			break
		}
	}
	if pick == nil && len(entries) == 1 {
		pick = &entries[0]
	}
	if pick == nil {
		return c, fmt.Errorf("source_image_checksum: %s has %d entries and none for %s", c.File, len(entries), want)
	}
	h := strings.ToLower(pick.hex)
	for algo, n := range hexLen {
		if len(h) == n && isHex(h) {
			return checksum{Algo: algo, Hex: h, File: c.File}, nil
		}
	}
	return c, fmt.Errorf("source_image_checksum: %s: %q for %s is not a SHA-256 or SHA-512 in hex", c.File, pick.hex, want)
}

func (c checksum) newHash() hash.Hash {
	if c.Algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// verify compares a computed digest with the expected one.
func (c checksum) verify(image string, sum []byte) error {
	got := hex.EncodeToString(sum)
	if got == c.Hex {
		return nil
	}
	from := "source_image_checksum"
	if c.File != "" {
		from = c.File
	}
	return fmt.Errorf("source image %s: %s mismatch: the file has %s, %s says %s", image, c.Algo, got, from, c.Hex)
}

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return s != ""
}
