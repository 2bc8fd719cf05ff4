//go:build !linux

package imagedef

// Without the Linux fast paths, files and directories are read through the
// os package (see fastio_linux.go).

func openRoot(dir string) int { return -1 }

func closeRoot(fd int) {}

func readFileFast(root int, rel string, a *fileArena) (data []byte, ok bool) { return nil, false }

func readDirFast(root int, rel string, buf []byte) (entries []dirEntry, ok bool) { return nil, false }
