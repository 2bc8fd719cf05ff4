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

// globFS returns the files (not directories) of fsys that match pattern, in
// lexical order, and the directory the walk started from. Besides
// path.Match syntax (`*`, `?`, `[...]`), a segment `**` matches zero or more
// directories. Symbolic links to directories are not followed; links lists
// the matches that are symbolic links.
func globFS(fsys fs.FS, pattern string) (matches []string, start string, links []string, err error) {
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
	if err := globDir(fsys, dir, segs[i:], found); err != nil {
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

func globDir(fsys fs.FS, dir string, segs []string, found map[string]bool) error {
	if len(segs) == 0 {
		return nil
	}
	seg, rest := segs[0], segs[1:]
	if seg == "**" {
		// Zero directories ...
		if err := globDir(fsys, dir, rest, found); err != nil {
			return err
		}
		// ... or one more, keeping the "**".
		entries, err := readDir(fsys, dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				if err := globDir(fsys, path.Join(dir, e.Name()), segs, found); err != nil {
					return err
				}
			}
		}
		return nil
	}
	entries, err := readDir(fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		ok, _ := path.Match(seg, e.Name()) // validated by validGlob
		if !ok {
			continue
		}
		p := path.Join(dir, e.Name())
		switch {
		case len(rest) == 0 && !e.IsDir():
			found[p] = e.Type()&fs.ModeSymlink != 0
		case len(rest) > 0 && e.IsDir():
			if err := globDir(fsys, p, rest, found); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDir lists dir; a directory that does not exist has no entries.
func readDir(fsys fs.FS, dir string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if st, serr := fs.Stat(fsys, dir); serr == nil && !st.IsDir() {
			return nil, nil
		}
		return nil, err
	}
	return entries, nil
}
