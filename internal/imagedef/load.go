package imagedef

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	if l.root = openRoot(rootDir); l.root >= 0 {
		l.native = true
		defer closeRoot(l.root)
	}
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

// loader does the I/O of Load; everything it reads goes to the pure
// functions scanFile, decodeFile and buildTree.
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
	// native says fsys is os.DirFS(rootDir) and root the root directory,
	// open: files and directories are then read with the fast paths of
	// fastio_linux.go.
	native bool
	root   int

	files    []loadedFile
	seen     map[string]bool
	fetched  map[string]fetchResult // prefetched, not yet visited
	warnings []Warning
	// listings caches the directories globs listed (by slash path relative
	// to the root), so a directory is read once however many globs and
	// "**" segments walk it; checkDefinitions looks definition files up in
	// it too.
	listings   map[string][]dirEntry
	arena      fileArena // for reads on the loading goroutine
	direntBufs [][]byte  // scratch for directory listings, one per worker
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
	l.seen = map[string]bool{}
	l.fetched = map[string]fetchResult{}
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

// visit reads one file and, depth first, the files it includes. stack holds
// the chain of including files.
func (l *loader) visit(rel string, stack []string, via *includeRef) error {
	if i := slices.Index(stack, rel); i >= 0 {
		chain := append(slices.Clone(stack[i:]), rel)
		return via.errAt(ErrIncludeCycle, "include cycle: %s", strings.Join(chain, " -> "))
	}
	if l.seen[rel] {
		return nil
	}
	l.seen[rel] = true
	res, ok := l.fetched[rel]
	if !ok {
		res = l.fetch(rel, &l.arena)
	}
	delete(l.fetched, rel)
	if res.readErr != nil {
		return l.readError(rel, filepath.Join(l.rootDir, filepath.FromSlash(rel)), via, res.readErr)
	}
	if res.err != nil {
		return res.err
	}
	f := res.lf.src
	l.files = append(l.files, *res.lf)
	stack = append(stack, rel)
	for i, pat := range f.includes {
		ref := &includeRef{f: f, i: i}
		matches, err := l.resolveInclude(f, ref, pat)
		if err != nil {
			return err
		}
		l.prefetch(matches)
		for _, m := range matches {
			if err := l.visit(m, stack, ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetchResult is one file read and decoded, or why not.
type fetchResult struct {
	lf      *loadedFile
	readErr error // reading failed (classified by visit, which knows the includer)
	err     error // the file is broken
}

// fetch reads one file and hands it to parseFile. a is the calling
// goroutine's arena.
func (l *loader) fetch(rel string, a *fileArena) fetchResult {
	data, err := l.readFile(rel, a)
	if err != nil {
		return fetchResult{readErr: err}
	}
	lf, err := parseFile(rel, filepath.Join(l.rootDir, filepath.FromSlash(rel)), data)
	return fetchResult{lf: lf, err: err}
}

// fileArena holds the contents of the small files one goroutine reads, in
// blocks of 64 KiB: one allocation for many files, which stay in memory
// with the Tree anyway. Each file's slice is capped at its length.
type fileArena struct {
	block []byte // the current block; its free space follows len
}

// free returns the free space of the current block (at least 8 KiB), as an
// empty slice.
func (a *fileArena) free() []byte {
	if cap(a.block)-len(a.block) < 8<<10 {
		a.block = make([]byte, 0, 64<<10)
	}
	return a.block[len(a.block):len(a.block)]
}

// take marks n bytes of the free space as used.
func (a *fileArena) take(n int) { a.block = a.block[:len(a.block)+n] }

// readFile reads a file of the tree.
func (l *loader) readFile(rel string, a *fileArena) ([]byte, error) {
	if l.native && fs.ValidPath(rel) {
		if data, ok := readFileFast(l.root, rel, a); ok {
			return data, nil
		}
	}
	return fs.ReadFile(l.fsys, rel)
}

// readDir lists a directory of the tree for globFS, sorted by name; a
// directory that does not exist, or is not a directory, has no entries.
func (l *loader) readDir(dir string) ([]dirEntry, error) {
	if entries, ok := l.listings[dir]; ok {
		return entries, nil
	}
	entries, err := l.listDir(dir)
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
	if l.listings == nil {
		l.listings = map[string][]dirEntry{}
	}
	l.listings[dir] = entries
	return entries, nil
}

// listAhead lists dirs that are not listed yet in parallel, when there are
// several (a "**" over a tree of many directories): a glob then walks the
// tree on all processors. Only the fast path is taken; a directory it
// cannot list is left to readDir.
func (l *loader) listAhead(dirs []string) {
	if !l.native {
		return
	}
	var todo []string
	for _, d := range dirs {
		if _, ok := l.listings[d]; !ok && fs.ValidPath(d) {
			todo = append(todo, d)
		}
	}
	if len(todo) < 4 {
		return
	}
	results := make([][]dirEntry, len(todo))
	listed := make([]bool, len(todo))
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		buf := l.direntBuf(w)
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) {
					return
				}
				results[i], listed[i] = readDirFast(l.root, todo[i], buf)
			}
		})
	}
	wg.Wait()
	if l.listings == nil {
		l.listings = map[string][]dirEntry{}
	}
	for i, d := range todo {
		if listed[i] {
			l.listings[d] = results[i]
		}
	}
}

// direntBuf returns worker i's scratch buffer for directory listings.
func (l *loader) direntBuf(i int) []byte {
	for len(l.direntBufs) <= i {
		l.direntBufs = append(l.direntBufs, make([]byte, 32<<10))
	}
	return l.direntBufs[i]
}

func (l *loader) listDir(dir string) ([]dirEntry, error) {
	if l.native && fs.ValidPath(dir) {
		if entries, ok := readDirFast(l.root, dir, l.direntBuf(0)); ok {
			return entries, nil
		}
	}
	des, err := fs.ReadDir(l.fsys, dir)
	if err != nil {
		return nil, err
	}
	entries := make([]dirEntry, len(des))
	for i, e := range des {
		entries[i] = dirEntry{name: e.Name(), typ: e.Type()}
	}
	return entries, nil
}

// prefetch reads and decodes the files an include matched, in parallel, so
// that trees of many image files load in a fraction of the time. visit still
// takes them in order, so results and the first error do not depend on
// timing.
func (l *loader) prefetch(rels []string) {
	if len(rels) < 2 {
		return
	}
	var todo []string
	inTodo := make(map[string]bool, len(rels))
	for _, r := range rels {
		if _, ok := l.fetched[r]; !ok && !l.seen[r] && !inTodo[r] {
			todo = append(todo, r)
			inTodo[r] = true
		}
	}
	if len(todo) < 2 {
		return
	}
	results := make([]fetchResult, len(todo))
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var a fileArena
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) {
					return
				}
				results[i] = l.fetch(todo[i], &a)
			}
		})
	}
	wg.Wait()
	if len(l.fetched) == 0 {
		l.fetched = make(map[string]fetchResult, len(todo))
	}
	l.files = slices.Grow(l.files, len(todo))
	for i, r := range todo {
		l.fetched[r] = results[i]
	}
}

// parseFile scans and decodes one file: syntax, includes, values and the
// images it declares. It does no I/O.
func parseFile(rel, osPath string, data []byte) (*loadedFile, error) {
	f := &srcFile{rel: rel, path: osPath, data: data}
	values, err := scanFile(f)
	if err != nil {
		return nil, err
	}
	lf := &loadedFile{src: f}
	if !f.hasSettings {
		return lf, nil
	}
	if values == nil {
		if values, err = decodeFile(f); err != nil {
			return nil, err
		}
	} else {
		f.noFloats = true
	}
	lf.values = values
	if v, ok := lf.values["images"]; ok {
		d := settingsDecoder{warnings: &lf.warnings, defs: &lf.defs}
		lf.images, lf.imagesErr = decodeImages(d, f, v)
	}
	f.variantKeys = nil // used up by decodeImages; the file stays in memory
	return lf, nil
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
	matches, start, links, err := globFS(l, joined)
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
		if !ok && l.isListedFile(d.abs) {
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

// isListedFile reports whether a directory listing made while loading shows
// the OS path p as a regular file (not a link): stat would find it and find
// it is no directory, so checkDefinitions need not ask again.
func (l *loader) isListedFile(p string) bool {
	if !l.native || len(l.listings) == 0 {
		return false
	}
	rel, err := filepath.Rel(l.rootDir, filepath.Dir(p))
	if err != nil {
		return false
	}
	entries, ok := l.listings[filepath.ToSlash(rel)]
	if !ok {
		return false
	}
	name := filepath.Base(p)
	i, found := slices.BinarySearchFunc(entries, name, func(e dirEntry, name string) int { return strings.Compare(e.name, name) })
	return found && entries[i].typ == 0
}
