//go:build !linux && !darwin

package platform

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

// subscribe has nothing to watch with here.
func subscribe(ctx context.Context, events chan<- netEvent, log *slog.Logger) error {
	return fmt.Errorf("watching the network: %w on %s", ErrNotSupported, runtime.GOOS)
}
