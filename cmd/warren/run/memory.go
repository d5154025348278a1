package run

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// Soft memory limits for the long-running tunnel roles. wireguard-go
// holds every packet in flight in a 64 KiB buffer, and with the garbage
// collector's default pacing (GOGC=100) a busy tunnel's heap grows to
// about twice what is in flight before a collection. A soft limit makes
// the collector run sooner instead, and the runtime return freed pages
// to the system sooner. The buffers hold no pointers, so the extra
// collections cost little. It is soft: past it the collector works
// harder (never more than about half the CPU), nothing fails.
// docs/PERFORMANCE.md has the figures; GOMEMLIMIT, when set, wins.
const (
	daemonMemoryLimit    = 112 << 20
	connectorMemoryLimit = 192 << 20
)

// limitMemory sets the process's soft memory limit to limit bytes unless
// the GOMEMLIMIT environment variable chose one.
func limitMemory(log *slog.Logger, limit int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(limit)
	if log != nil {
		log.Debug("soft memory limit set", "bytes", limit)
	}
}
