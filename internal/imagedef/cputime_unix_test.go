//go:build unix

package imagedef

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU time of the test process. Benchmarks
// report it next to wall time because the build machines are shared.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
