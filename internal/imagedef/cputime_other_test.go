//go:build !unix

package imagedef

import "time"

func processCPU() time.Duration { return 0 }
