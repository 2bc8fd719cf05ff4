// Design: Load does the I/O through io/fs (os.DirFS), reading and decoding the files an include matched on all
// processors; everything after the bytes are read is a pure function of them.

package imagedef

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads the root TOML file at path (an azldev.toml, a registry such as
// images.toml, or a single image or distro file), follows its includes and
// returns the checked tree and any warnings. The directory of the root file
// is the tree root; see the package comment for the include rules. Load
// checks that every definition path names an existing file.
func Load(path string) (*Tree, []Warning, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, &ConfigError{File: path, Msg: err.Error(), Kind: ErrRead, Err: err}
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, nil, &ConfigError{File: abs, Msg: "cannot read the root file: " + errText(err), Kind: ErrRead, Err: err}
	}
	if st.IsDir() {
		return nil, nil, &ConfigError{File: abs, Msg: "is a directory; expected the root TOML file (for example azldev.toml or images.toml)", Kind: ErrRead}
	}
	rootDir := filepath.Dir(abs)
	// os.DirFS is much faster than an os.Root here (one open per file
	// instead of one per path component); insideRoot keeps symbolic links
	// from leading out of the tree.
	l := &loader{fsys: os.DirFS(rootDir), rootDir: rootDir, stat: osStat, checkLinks: true}
	return l.load(filepath.Base(abs))
}

func osStat(p string) (isDir bool, err error) {
	st, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}

// errText is the message of an I/O error without the repeated path.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// loader does the I/O of Load; what it reads goes to decodeFile and
// buildTree, which do none.
type loader struct {
	fsys    fs.FS  // the tree root
	rootDir string // OS path of the tree root
	// stat checks a definition file (given by OS path; it may lie outside
	// the tree root).
	stat func(p string) (isDir bool, err error)
	// checkLinks makes includes resolve symbolic links and refuse those that
	// leave the root (off for in-memory file systems).
	checkLinks bool
	realRoot   string

	files    []loadedFile
	seen     map[string]bool
	ahead    map[string]readResult // read by readAhead, not yet visited
	warnings []Warning
	// listings caches the directories globs listed (by slash path relative
	// to the root), so a directory is read once however many globs and
	// "**" segments walk it.
	listings map[string][]fs.DirEntry
}

// includeRef says which includes entry led to a file.
type includeRef struct {
	f *srcFile
	i int
}

func (r *includeRef) errAt(kind error, format string, args ...any) *ConfigError {
	return r.f.errAt(kind, keyPath{"includes", index(r.i)}, format, args...)
}

func (l *loader) load(rootRel string) (*Tree, []Warning, error) {
	l.seen, l.listings = map[string]bool{}, map[string][]fs.DirEntry{}
	if err := l.visit(rootRel, nil, nil); err != nil {
		return nil, nil, err
	}
	t, ws, defs, err := buildTree(l.rootDir, l.files)
	if err != nil {
		return nil, nil, err
	}
	l.warnings = append(l.warnings, ws...)
	if err := l.checkDefinitions(defs); err != nil {
		return nil, nil, err
	}
	return t, l.warnings, nil
}

// visit reads and decodes one file and, depth first, the files it includes.
// stack holds the chain of including files.
func (l *loader) visit(rel string, stack []string, via *includeRef) error {
	if i := slices.Index(stack, rel); i >= 0 {
		chain := append(slices.Clone(stack[i:]), rel)
		return via.errAt(ErrIncludeCycle, "include cycle: %s", strings.Join(chain, " -> "))
	}
	if l.seen[rel] {
		return nil
	}
	l.seen[rel] = true
	res, ok := l.ahead[rel]
	if !ok {
		res = l.read(rel)
	}
	delete(l.ahead, rel)
	if res.readErr != nil {
		return l.readError(rel, filepath.Join(l.rootDir, filepath.FromSlash(rel)), via, res.readErr)
	}
	if res.err != nil {
		return res.err
	}
	f, values := res.lf.src, res.lf.values
	var err error
	var includes []string
	if v, ok := values["includes"]; ok {
		if includes, err = (reader{f}).strList(keyPath{"includes"}, v); err != nil {
			return err
		}
	}
	l.files = append(l.files, *res.lf)
	stack = append(stack, rel)
	for i, pat := range includes {
		ref := &includeRef{f: f, i: i}
		matches, err := l.resolveInclude(f, ref, pat)
		if err != nil {
			return err
		}
		l.readAhead(matches)
		for _, m := range matches {
			if err := l.visit(m, stack, ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// listAhead lists the directories a glob is about to walk on all processors
// (a "**" over many directories); readDir takes the listings, and lists
// again, to report it, a directory that failed here.
func (l *loader) listAhead(dirs []string) {
	var todo []string
	for _, d := range dirs {
		if _, ok := l.listings[d]; !ok {
			todo = append(todo, d)
		}
	}
	listed := make([][]fs.DirEntry, len(todo))
	errs := make([]error, len(todo))
	forEach(len(todo), func(i int) { listed[i], errs[i] = fs.ReadDir(l.fsys, todo[i]) })
	for i, d := range todo {
		if errs[i] == nil {
			l.listings[d] = listed[i]
		}
	}
}

// readResult is one file read and decoded, or why not.
type readResult struct {
	lf      *loadedFile
	readErr error // reading failed (classified by visit, which knows the includer)
	err     error // the file is not valid TOML
}

// read reads and decodes one file, its images included (their errors are
// reported by buildTree, in load order).
func (l *loader) read(rel string) readResult {
	data, err := fs.ReadFile(l.fsys, rel)
	if err != nil {
		return readResult{readErr: err}
	}
	f := &srcFile{rel: rel, path: filepath.Join(l.rootDir, filepath.FromSlash(rel)), data: data}
	values, err := decodeFile(f)
	if err != nil {
		return readResult{err: err}
	}
	lf := &loadedFile{src: f, values: values}
	if v, ok := values["images"]; ok {
		lf.images, lf.imagesErr = decodeImages(settingsDecoder{warnings: &lf.warnings, defs: &lf.defs}, f, v)
	}
	return readResult{lf: lf}
}

// readAhead reads and decodes the files an include matched on all
// processors, as the time of Load goes into reading and decoding many small
// files. visit still takes them in order, so results and errors do not
// depend on timing.
func (l *loader) readAhead(rels []string) {
	var todo []string
	for _, r := range rels {
		if _, ok := l.ahead[r]; !ok && !l.seen[r] {
			todo = append(todo, r)
		}
	}
	results := make([]readResult, len(todo))
	forEach(len(todo), func(i int) { results[i] = l.read(todo[i]) })
	if l.ahead == nil {
		l.ahead = make(map[string]readResult, len(todo))
	}
	for i, r := range todo {
		l.ahead[r] = results[i]
	}
}

// readDir lists a directory of the tree for globFS, sorted by name; a
// directory that does not exist, or is not a directory, has no entries.
func (l *loader) readDir(dir string) ([]fs.DirEntry, error) {
	if entries, ok := l.listings[dir]; ok {
		return entries, nil
	}
	entries, err := fs.ReadDir(l.fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		} else if st, serr := fs.Stat(l.fsys, dir); serr == nil && !st.IsDir() {
			err = nil
		}
		if err != nil {
			return nil, err
		}
		entries = nil
	}
	l.listings[dir] = entries
	return entries, nil
}

// readError classifies a failed read of an included (or the root) file.
func (l *loader) readError(rel, osPath string, via *includeRef, err error) error {
	if via == nil {
		return &ConfigError{File: osPath, Msg: "cannot read the root file: " + errText(err), Kind: ErrRead, Err: err}
	}
	// os.Root refuses symbolic links that leave the root; say so plainly.
	if real, rerr := filepath.EvalSymlinks(osPath); rerr == nil {
		if realRoot, rerr := filepath.EvalSymlinks(l.rootDir); rerr == nil && !within(realRoot, real) {
			e := via.errAt(ErrIncludeEscape, "%s is a link to %s, outside the tree root %s", osPath, real, l.rootDir)
			e.Err = err
			return e
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		e := via.errAt(ErrIncludeMissing, "included file %s does not exist", osPath)
		e.Err = err
		return e
	}
	e := via.errAt(ErrRead, "cannot read included file %s: %s", osPath, errText(err))
	e.Err = err
	return e
}

// insideRoot fails if rel, once symbolic links are resolved, lies outside
// the tree root. Paths that do not resolve are left to the read to report.
func (l *loader) insideRoot(ref *includeRef, rel string) error {
	if !l.checkLinks || rel == "." {
		return nil
	}
	if l.realRoot == "" {
		real, err := filepath.EvalSymlinks(l.rootDir)
		if err != nil {
			return ref.errAt(ErrRead, "cannot resolve the tree root %s: %s", l.rootDir, errText(err))
		}
		l.realRoot = real
	}
	osPath := filepath.Join(l.rootDir, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(osPath)
	if err != nil || within(l.realRoot, real) {
		return nil
	}
	return ref.errAt(ErrIncludeEscape, "%s is a link to %s, outside the tree root %s", osPath, real, l.rootDir)
}

// within reports whether p is dir or inside it (both cleaned OS paths).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// resolveInclude turns one includes entry into root-relative file paths.
func (l *loader) resolveInclude(f *srcFile, ref *includeRef, pat string) ([]string, error) {
	if strings.TrimSpace(pat) == "" {
		return nil, ref.errAt(ErrValue, "empty include; expected a path or glob relative to %s", filepath.Base(f.path))
	}
	var joined string
	if filepath.IsAbs(pat) {
		if !within(l.rootDir, filepath.Clean(pat)) {
			return nil, ref.errAt(ErrIncludeEscape, "include %q is outside the tree root %s", pat, l.rootDir)
		}
		rel, _ := filepath.Rel(l.rootDir, filepath.Clean(pat))
		joined = filepath.ToSlash(rel)
	} else {
		joined = path.Join(path.Dir(f.rel), filepath.ToSlash(pat))
	}
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return nil, ref.errAt(ErrIncludeEscape, "include %q resolves to %s, outside the tree root %s",
			pat, filepath.Join(l.rootDir, filepath.FromSlash(joined)), l.rootDir)
	}
	if !hasMeta(joined) {
		if err := l.insideRoot(ref, joined); err != nil {
			return nil, err
		}
		return []string{joined}, nil
	}
	if err := validGlob(joined); err != nil {
		return nil, ref.errAt(ErrValue, "bad glob %q: %v", pat, err)
	}
	matches, start, links, err := globFS(l.readDir, l.listAhead, joined)
	if err != nil {
		return nil, ref.errAt(ErrRead, "cannot expand glob %q: %s", pat, errText(err))
	}
	// The walk itself never follows links to directories, so only its
	// starting directory and the matches that are links need checking.
	for _, p := range append([]string{start}, links...) {
		if err := l.insideRoot(ref, p); err != nil {
			return nil, err
		}
	}
	if len(matches) == 0 {
		e := ref.errAt(nil, "glob %q matches no file (looked for %s)", pat, filepath.Join(l.rootDir, filepath.FromSlash(joined)))
		l.warnings = append(l.warnings, Warning{File: e.File, Line: e.Line, Col: e.Col, Key: e.Key, Msg: e.Msg})
	}
	return matches, nil
}

// checkDefinitions makes sure every definition path names an existing file.
func (l *loader) checkDefinitions(defs []defRef) error {
	checked := map[string]error{}
	for _, d := range defs {
		err, ok := checked[d.abs]
		if !ok && l.listedAsFile(d.abs) {
			err, ok = nil, true
		}
		if !ok {
			var isDir bool
			isDir, err = l.stat(d.abs)
			if err == nil && isDir {
				err = fmt.Errorf("is a directory")
			}
			checked[d.abs] = err
		}
		if err != nil {
			e := d.f.errAt(ErrDefinitionMissing, d.path, "definition %s: %s; expected an existing KIWI file (paths are relative to %s)",
				d.abs, errText(err), filepath.Base(d.f.path))
			e.Err = err
			return e
		}
	}
	return nil
}

// listedAsFile reports whether a directory listing a glob made shows the OS
// path p as a regular file: a stat would find it and find no directory, so
// checkDefinitions need not ask again (image trees keep the KIWI file next
// to the image file a glob found).
func (l *loader) listedAsFile(p string) bool {
	rel, err := filepath.Rel(l.rootDir, filepath.Dir(p))
	if err != nil {
		return false
	}
	entries := l.listings[filepath.ToSlash(rel)]
	i, found := slices.BinarySearchFunc(entries, filepath.Base(p), func(e fs.DirEntry, name string) int { return strings.Compare(e.Name(), name) })
	return found && entries[i].Type().IsRegular()
}
