//go:build linux

package imagedef

import (
	"encoding/binary"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The fast paths below read a file with open, read (until it returns 0) and
// close, and list a directory with open, getdents64 and close. os.ReadFile
// and os.ReadDir also register the descriptor with the poller, query its
// flags and stat it: on machines where a system call costs microseconds that
// is most of the time Load spends on I/O. They handle only the plain
// successful case; on any error, or anything unusual, they report !ok and
// the caller does the same read through the os package, which gives the
// errors Load has always reported.

// openRoot opens the tree root for the fast paths, which open files
// relative to it (the kernel then walks the path below the root only); -1
// if it cannot.
func openRoot(dir string) int {
	fd, err := openRetry(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1
	}
	return fd
}

func closeRoot(fd int) { unix.Close(fd) }

// readFileFast reads the file at rel (a valid io/fs path) below the root
// opened by openRoot. Small files are read into the goroutine's arena.
func readFileFast(root int, rel string, a *fileArena) (data []byte, ok bool) {
	fd, err := openRetry(root, rel, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	buf := a.free()
	own := false // buf is an array of its own, not the arena's
	for {
		if len(buf) == cap(buf) {
			// The file does not fit into the arena: it gets an array of
			// its own.
			grown := make([]byte, len(buf), 2*cap(buf))
			copy(grown, buf)
			buf, own = grown, true
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	if !own {
		a.take(len(buf))
	}
	return buf[:len(buf):len(buf)], true
}

// linux_dirent64, the record getdents64 returns, has the same layout on
// every architecture: ino (8 bytes), off (8), reclen (2), type (1), then
// the NUL-terminated name.
const (
	direntReclenOff = 16
	direntTypeOff   = 18
	direntNameOff   = 19
)

// readDirFast lists the directory at rel (a valid io/fs path) below the
// root opened by openRoot, sorted by name, like os.ReadDir. buf is a
// scratch buffer for getdents64. An entry of unknown type (some file
// systems do not report types) gives !ok: os.ReadDir then stats the
// entries itself.
func readDirFast(root int, rel string, buf []byte) (entries []dirEntry, ok bool) {
	fd, err := openRetry(root, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if n <= 0 {
			break
		}
		for rec := buf[:n]; len(rec) > direntNameOff; {
			reclen := int(binary.NativeEndian.Uint16(rec[direntReclenOff:]))
			if reclen <= direntNameOff || reclen > len(rec) {
				return nil, false
			}
			name := rec[direntNameOff:reclen]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			typ := rec[direntTypeOff]
			rec = rec[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			mode, known := direntMode(typ)
			if !known {
				return nil, false
			}
			entries = append(entries, dirEntry{name: string(name), typ: mode})
		}
	}
	slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return entries, true
}

// direntMode maps a d_type to file mode type bits, as os.ReadDir does.
func direntMode(typ byte) (fs.FileMode, bool) {
	switch typ {
	case unix.DT_BLK:
		return fs.ModeDevice, true
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case unix.DT_DIR:
		return fs.ModeDir, true
	case unix.DT_FIFO:
		return fs.ModeNamedPipe, true
	case unix.DT_LNK:
		return fs.ModeSymlink, true
	case unix.DT_REG:
		return 0, true
	case unix.DT_SOCK:
		return fs.ModeSocket, true
	}
	return 0, false
}

func openRetry(dir int, p string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dir, p, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
