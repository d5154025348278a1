//go:build !linux

package netstack

import "time"

// processCPU is not measured here: false.
func processCPU() (time.Duration, bool) { return 0, false }
