// Design: include globs walk the tree through io/fs with path.Match per
// segment, plus "**" for any number of directories; nothing OS-specific.

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

// globFS returns the files (not directories) that match pattern, in lexical
// order, and the directory the walk started from. Besides path.Match syntax
// (`*`, `?`, `[...]`), a segment `**` matches zero or more directories.
// Symbolic links to directories are not followed; links lists the matches
// that are symbolic links. readDir lists a directory, sorted by name;
// listAhead may list, in advance, the directories the walk is about to read.
func globFS(readDir func(dir string) ([]fs.DirEntry, error), listAhead func(dirs []string), pattern string) (matches []string, start string, links []string, err error) {
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
	found := map[string]bool{} // match -> is a symbolic link
	var walk func(dir string, segs []string) error
	walk = func(dir string, segs []string) error {
		if len(segs) == 0 {
			return nil
		}
		seg, rest := segs[0], segs[1:]
		if seg == "**" {
			// Zero directories, or one more keeping the "**".
			if err := walk(dir, rest); err != nil {
				return err
			}
			rest = segs
		}
		entries, err := readDir(dir)
		if err != nil {
			return err
		}
		var subdirs []string
		for _, e := range entries {
			if e.IsDir() {
				subdirs = append(subdirs, path.Join(dir, e.Name()))
			}
		}
		if len(rest) > 0 {
			listAhead(subdirs)
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name())
			if seg == "**" {
				if e.IsDir() {
					if err := walk(p, rest); err != nil {
						return err
					}
				}
				continue
			}
			if ok, _ := path.Match(seg, e.Name()); !ok { // seg is checked by validGlob
				continue
			}
			switch {
			case len(rest) == 0 && !e.IsDir():
				found[p] = e.Type()&fs.ModeSymlink != 0
			case len(rest) > 0 && e.IsDir():
				if err := walk(p, rest); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(dir, segs[i:]); err != nil {
		return nil, dir, nil, err
	}
	for f, isLink := range found {
		matches = append(matches, f)
		if isLink {
			links = append(links, f)
		}
	}
	slices.Sort(matches)
	slices.Sort(links)
	return matches, dir, links, nil
}
