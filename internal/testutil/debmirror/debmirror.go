// Package debmirror finds the Debian archive this machine's apt uses, for
// the real KIWI builds of tests, the demo and the benchmarks; the plugin
// itself never links it.
package debmirror

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// Where URL looks, in order.
var (
	debianSourcesPath = "/etc/apt/sources.list.d/debian.sources"
	sourcesListPath   = "/etc/apt/sources.list"
)

// URL returns the Debian archive this machine's apt uses, for a
// KIWI apt-deb repository source (the tests pass it with --set-repo): the
// first URI of the first enabled deb stanza for a main suite in
// /etc/apt/sources.list.d/debian.sources (deb822), else the first deb line
// of /etc/apt/sources.list. A URI without a path gets "/debian".
func URL() (string, error) {
	data, err := os.ReadFile(debianSourcesPath)
	if err == nil {
		if u, perr := MirrorFromDeb822(data); perr == nil {
			return u, nil
		} else if !errors.Is(perr, errNoMirror) {
			return "", fmt.Errorf("%s: %w", debianSourcesPath, perr)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	data, err = os.ReadFile(sourcesListPath)
	if err == nil {
		if u, perr := MirrorFromSourcesList(data); perr == nil {
			return u, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return "", fmt.Errorf("%w in %s or %s", errNoMirror, debianSourcesPath, sourcesListPath)
}

var errNoMirror = errors.New("no Debian deb source")

// MirrorFromDeb822 picks the mirror from a deb822 .sources file: the first
// enabled stanza with Types "deb" whose Suites hold a main suite (no
// -security, -updates, -backports), else the first enabled deb stanza.
func MirrorFromDeb822(data []byte) (string, error) {
	var first string
	for _, st := range deb822Stanzas(data) {
		if strings.EqualFold(st["enabled"], "no") || !hasWord(st["types"], "deb") {
			continue
		}
		uris := strings.Fields(st["uris"])
		if len(uris) == 0 {
			continue
		}
		u, err := normaliseMirror(uris[0])
		if err != nil {
			return "", err
		}
		for _, s := range strings.Fields(st["suites"]) {
			if !strings.ContainsRune(s, '-') {
				return u, nil
			}
		}
		if first == "" {
			first = u
		}
	}
	if first == "" {
		return "", errNoMirror
	}
	return first, nil
}

// MirrorFromSourcesList picks the URI of the first "deb" line of a
// one-line-style sources.list.
func MirrorFromSourcesList(data []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // [arch=amd64 signed-by=...]
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) > 0 {
			return normaliseMirror(f[0])
		}
	}
	return "", errNoMirror
}

func normaliseMirror(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" && u.Scheme != "file" {
		return "", fmt.Errorf("apt source URI %q is not a URL", raw)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/debian"
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String(), nil
}

// deb822Stanzas parses deb822 paragraphs into lower-cased keys; continuation
// lines are joined with spaces and comments dropped.
func deb822Stanzas(data []byte) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			last = ""
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			cur[last] += " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.ToLower(strings.TrimSpace(k))
		cur[last] = strings.TrimSpace(v)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}
