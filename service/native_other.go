//go:build !linux && !darwin

package service

import (
	"fmt"
	"runtime"
)

func native() (manager, error) {
	return nil, fmt.Errorf("%w on %s yet: run warren daemon --userspace yourself", ErrNotSupported, runtime.GOOS)
}
