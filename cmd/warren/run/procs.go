package run

import (
	"context"
	"log/slog"
	"os"
	"sync"

	"github.com/warrennet/warren/overlay/procs"
)

// governProcs runs a procs governor for the tunnel roles (one P while one
// CPU is plenty, all of them under load; see package procs) until ctx
// ends, unless the GOMAXPROCS environment variable chose a fixed value,
// which wins. The returned stop ends it and waits for it.
func governProcs(ctx context.Context, log *slog.Logger) (stop func()) {
	if os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := procs.Run(ctx, procs.Config{Logger: log}); err != nil {
			log.Debug("GOMAXPROCS left as it is", "err", err)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
