//go:build !linux

package procs

import "time"

// processCPUTime is the user and system CPU time of the whole process.
func processCPUTime() (time.Duration, error) { return 0, ErrUnsupported }
