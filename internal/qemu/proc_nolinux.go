//go:build unix && !linux

package qemu

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
