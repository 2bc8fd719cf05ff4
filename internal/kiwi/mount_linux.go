package kiwi

import (
	"errors"

	"golang.org/x/sys/unix"
)

// unmountDetach lazily unmounts a mount point; one that is already gone is
// not an error.
func unmountDetach(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
