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
//
// A limit below what the process legitimately holds is worse than none:
// the collector then runs back to back. The connector holds a gVisor
// endpoint, a socket and two goroutines per flow, about 20 KiB: at
// 192 MiB, 10,000 idle flows kept it collecting at 10 % of a CPU while
// idle, and new connects waited up to 18 ms at p99 (4 ms without the
// limit). Its limit leaves room for that many flows besides bulk
// traffic's buffers.
//
// With that room the collector's default pacing let a busy connector's
// heap grow to twice its live set, up to the limit: 247 MB of RSS on the
// relay path, near its 256 MB floor. connectorGCPercent starts a
// collection at one and a half times the live set instead; the buffers
// it collects hold no pointers, so the extra collections cost little.
// GOGC, when set, wins.
const (
	daemonMemoryLimit    = 112 << 20
	connectorMemoryLimit = 384 << 20
	connectorGCPercent   = 50
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

// paceCollector sets the collector's GOGC percentage unless the GOGC
// environment variable chose one.
func paceCollector(log *slog.Logger, percent int) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(percent)
	if log != nil {
		log.Debug("collector pacing set", "gogc", percent)
	}
}
