//go:build !linux

package kiwi

// unmountDetach does nothing where KIWI cannot run (it builds on Linux
// only), so nothing it mounted can be left behind.
func unmountDetach(path string) error { return nil }
