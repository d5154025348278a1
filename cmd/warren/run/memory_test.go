package run

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestLimitMemory(t *testing.T) {
	orig := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(orig) })
	for _, tt := range []struct {
		name, env string
		want      int64
	}{
		{"default", "", daemonMemoryLimit},
		{"GOMEMLIMIT wins", "1GiB", math.MaxInt64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			t.Setenv("GOMEMLIMIT", tt.env)
			limitMemory(nil, daemonMemoryLimit)
			if got := debug.SetMemoryLimit(-1); got != tt.want {
				t.Errorf("memory limit %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPaceCollector(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	for _, tt := range []struct {
		name, env string
		want      int
	}{
		{"default", "", connectorGCPercent},
		{"GOGC wins", "200", 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			t.Setenv("GOGC", tt.env)
			paceCollector(nil, connectorGCPercent)
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Errorf("GOGC %d, want %d", got, tt.want)
			}
		})
	}
}
