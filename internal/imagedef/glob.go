package imagedef

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// hasMeta reports whether an include pattern is a glob.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[`) }

// validGlob checks every segment of a slash-separated pattern.
func validGlob(pattern string) error {
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return errors.New(`"**" must be a whole path segment, as in "dir/**/*.toml"`)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return err
		}
	}
	return nil
}

// dirEntry is one entry of a directory listing: its name and type bits.
type dirEntry struct {
	name string
	typ  fs.FileMode
}

// lister lists the directories a glob walks (see loader.readDir).
type lister interface {
	readDir(dir string) ([]dirEntry, error)
	// listAhead may list dirs, which the walk is about to read, in advance.
	listAhead(dirs []string)
}

// globFS returns the files (not directories) that match pattern, in lexical
// order, and the directory the walk started from. Besides path.Match syntax
// (`*`, `?`, `[...]`), a segment `**` matches zero or more directories.
// Symbolic links to directories are not followed; links lists the matches
// that are symbolic links.
func globFS(ls lister, pattern string) (matches []string, start string, links []string, err error) {
	segs := strings.Split(pattern, "/")
	// Start at the longest prefix without meta characters.
	i := 0
	for i < len(segs)-1 && !hasMeta(segs[i]) {
		i++
	}
	dir := "."
	if i > 0 {
		dir = path.Join(segs[:i]...)
	}
	found := map[string]bool{}
	if err := globDir(ls, dir, segs[i:], found); err != nil {
		return nil, dir, nil, err
	}
	out := make([]string, 0, len(found))
	for f, isLink := range found {
		out = append(out, f)
		if isLink {
			links = append(links, f)
		}
	}
	slices.Sort(out)
	slices.Sort(links)
	return out, dir, links, nil
}

func globDir(ls lister, dir string, segs []string, found map[string]bool) error {
	if len(segs) == 0 {
		return nil
	}
	seg, rest := segs[0], segs[1:]
	if seg == "**" {
		// Zero directories ...
		if err := globDir(ls, dir, rest, found); err != nil {
			return err
		}
		// ... or one more, keeping the "**".
		entries, err := ls.readDir(dir)
		if err != nil {
			return err
		}
		var subdirs []string
		for _, e := range entries {
			if e.typ.IsDir() {
				subdirs = append(subdirs, path.Join(dir, e.name))
			}
		}
		ls.listAhead(subdirs)
		for _, sub := range subdirs {
			if err := globDir(ls, sub, segs, found); err != nil {
				return err
			}
		}
		return nil
	}
	entries, err := ls.readDir(dir)
	if err != nil {
		return err
	}
	var subdirs []string
	for _, e := range entries {
		if !matchSegment(seg, e.name) {
			continue
		}
		p := path.Join(dir, e.name)
		switch {
		case len(rest) == 0 && !e.typ.IsDir():
			found[p] = e.typ&fs.ModeSymlink != 0
		case len(rest) > 0 && e.typ.IsDir():
			subdirs = append(subdirs, p)
		}
	}
	ls.listAhead(subdirs)
	for _, sub := range subdirs {
		if err := globDir(ls, sub, rest, found); err != nil {
			return err
		}
	}
	return nil
}

// matchSegment is path.Match(seg, name) for a valid pattern segment and a
// name without "/", with shortcuts for the common forms NAME, *SUFFIX and
// PREFIX* (no other meta character).
func matchSegment(seg, name string) bool {
	const meta = `*?[\`
	switch i := strings.IndexAny(seg, meta); {
	case i < 0:
		return seg == name
	case i == 0 && seg[0] == '*' && !strings.ContainsAny(seg[1:], meta):
		return strings.HasSuffix(name, seg[1:])
	case i == len(seg)-1 && seg[i] == '*':
		return strings.HasPrefix(name, seg[:i])
	}
	ok, _ := path.Match(seg, name) // validated by validGlob
	return ok
}
