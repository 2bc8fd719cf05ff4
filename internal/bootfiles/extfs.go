package bootfiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
)

// DefaultDebugfs is e2fsprogs' debugfs, looked up in PATH.
const DefaultDebugfs = "debugfs"

// ErrNotFound: the path does not exist in the filesystem.
var ErrNotFound = errors.New("not found in filesystem")

// ExtFS reads an ext2/3/4 filesystem inside a file through debugfs, without
// mounting it: Image is a filesystem image or a whole disk, with Offset the
// filesystem's first byte (a partition's start).
type ExtFS struct {
	Image   string
	Offset  int64
	Debugfs string // empty means DefaultDebugfs
}

// Entry is one directory entry as `debugfs ls -p` reports it.
type Entry struct {
	Name  string
	Inode uint64
	Mode  uint32 // including the file type bits (0100000 regular, 0120000 symlink, 040000 directory)
	Size  int64
}

// Regular reports a regular file.
func (e Entry) Regular() bool { return e.Mode&0o170000 == 0o100000 }

// Symlink reports a symbolic link.
func (e Entry) Symlink() bool { return e.Mode&0o170000 == 0o120000 }

// Dir reports a directory.
func (e Entry) Dir() bool { return e.Mode&0o170000 == 0o040000 }

func (fs ExtFS) String() string {
	if fs.Offset == 0 {
		return fs.Image
	}
	return fmt.Sprintf("%s at byte %d", fs.Image, fs.Offset)
}

// request runs one debugfs request and returns its stdout. debugfs exits 0
// even when the request fails, so anything on stderr besides its version
// banner is the error.
func (fs ExtFS) request(ctx context.Context, req string) ([]byte, error) {
	bin := fs.Debugfs
	if bin == "" {
		bin = DefaultDebugfs
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("debugfs not found (%v); on Debian install it with `apt-get install e2fsprogs`", err)
	}
	dev := fs.Image
	if fs.Offset != 0 {
		// e2fsprogs' unix I/O manager takes options after '?'.
		dev = fmt.Sprintf("%s?offset=%d", fs.Image, fs.Offset)
	}
	cmd := exec.CommandContext(ctx, bin, "-R", req, dev)
	cmd.Env = append(os.Environ(), "DEBUGFS_PAGER=__none__", "PAGER=__none__", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var msgs []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debugfs ") && strings.Contains(l, "(") {
			continue
		}
		msgs = append(msgs, l)
	}
	if err != nil || len(msgs) > 0 {
		msg := strings.Join(msgs, "; ")
		if msg == "" && err != nil {
			msg = err.Error()
		}
		if strings.Contains(msg, "File not found") {
			return nil, fmt.Errorf("debugfs %q on %s: %s: %w", req, fs, msg, ErrNotFound)
		}
		return nil, fmt.Errorf("debugfs %q on %s: %s", req, fs, msg)
	}
	return stdout.Bytes(), nil
}

// quote makes p one argument of a debugfs request.
func quote(p string) (string, error) {
	if strings.ContainsAny(p, "\"\n\r\x00") {
		return "", fmt.Errorf("path %q holds a quote, line break or NUL, which debugfs requests cannot carry", p)
	}
	return `"` + p + `"`, nil
}

// List returns the entries of a directory, without "." and "..".
func (fs ExtFS) List(ctx context.Context, dir string) ([]Entry, error) {
	q, err := quote(dir)
	if err != nil {
		return nil, err
	}
	out, err := fs.request(ctx, "ls -p "+q)
	if err != nil {
		return nil, err
	}
	return parseLsP(out)
}

// parseLsP parses `ls -p` lines: /INODE/MODE(octal)/UID/GID/NAME/SIZE/.
// Names may hold '/' never, but may hold anything else, so the fixed
// fields are taken from both ends.
func parseLsP(out []byte) ([]Entry, error) {
	var entries []Entry
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasPrefix(l, "/") || !strings.HasSuffix(l, "/") {
			return nil, fmt.Errorf("debugfs ls -p: unexpected line %q", l)
		}
		f := strings.Split(l[1:len(l)-1], "/")
		if len(f) < 6 {
			return nil, fmt.Errorf("debugfs ls -p: unexpected line %q", l)
		}
		name := strings.Join(f[4:len(f)-1], "/")
		if name == "." || name == ".." {
			continue
		}
		ino, err1 := strconv.ParseUint(f[0], 10, 64)
		mode, err2 := strconv.ParseUint(f[1], 8, 32)
		var size int64
		var err3 error
		if f[len(f)-1] != "" { // directories have no size
			size, err3 = strconv.ParseInt(f[len(f)-1], 10, 64)
		}
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("debugfs ls -p: line %q: %w", l, err)
		}
		entries = append(entries, Entry{Name: name, Inode: ino, Mode: uint32(mode), Size: size})
	}
	return entries, nil
}

// Readlink returns a symbolic link's target.
func (fs ExtFS) Readlink(ctx context.Context, p string) (string, error) {
	q, err := quote(p)
	if err != nil {
		return "", err
	}
	out, err := fs.request(ctx, "stat "+q)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(out, []byte("Type: symlink")) {
		return "", fmt.Errorf("%s in %s is not a symbolic link", p, fs)
	}
	const fast = `Fast link dest: "`
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), fast); ok {
			return strings.TrimSuffix(rest, `"`), nil
		}
	}
	// A slow link keeps its target in a data block, which cat prints.
	target, err := fs.request(ctx, "cat "+q)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(target, "\x00")), nil
}

// Dump copies a file out of the filesystem to out (created or replaced).
func (fs ExtFS) Dump(ctx context.Context, p, out string) error {
	q, err := quote(p)
	if err != nil {
		return err
	}
	qo, err := quote(out)
	if err != nil {
		return err
	}
	_ = os.Remove(out) // debugfs refuses nothing, but starts from an empty file
	_, err = fs.request(ctx, "dump "+q+" "+qo)
	return err
}

// ReadFile returns a (small) file's content, following symbolic links
// (/etc/os-release is one on most distributions).
func (fs ExtFS) ReadFile(ctx context.Context, p string) ([]byte, error) {
	real, err := fs.Resolve(ctx, p)
	if err != nil {
		return nil, err
	}
	q, err := quote(real)
	if err != nil {
		return nil, err
	}
	return fs.request(ctx, "cat "+q)
}

// maxLinks bounds symbolic link hops in Resolve, as the kernel does.
const maxLinks = 40

// Resolve returns p with every symbolic link in it followed, as a path
// from the filesystem's root. Links out of the root ("/..") stay at "/".
func (fs ExtFS) Resolve(ctx context.Context, p string) (string, error) {
	todo := splitPath(p)
	cur := "/"
	hops := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, name)
		typ, err := fs.fileType(ctx, next)
		if err != nil {
			return "", err
		}
		if typ != "symlink" {
			if len(todo) > 0 && typ != "directory" {
				return "", fmt.Errorf("%s in %s: %s is a %s, not a directory", p, fs, next, typ)
			}
			cur = next
			continue
		}
		if hops++; hops > maxLinks {
			return "", fmt.Errorf("%s in %s: too many levels of symbolic links", p, fs)
		}
		target, err := fs.Readlink(ctx, next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = append(splitPath(target), todo...)
	}
	return cur, nil
}

// fileType returns the "Type:" debugfs stat reports: regular, directory,
// symlink, ...
func (fs ExtFS) fileType(ctx context.Context, p string) (string, error) {
	q, err := quote(p)
	if err != nil {
		return "", err
	}
	out, err := fs.request(ctx, "stat "+q)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "Type: "); i >= 0 {
			if f := strings.Fields(l[i+len("Type: "):]); len(f) > 0 {
				return f[0], nil
			}
		}
	}
	return "", fmt.Errorf("debugfs stat %s on %s: no file type in its output", p, fs)
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}
