package procs

import (
	"fmt"
	"runtime/metrics"
)

// schedLatencies is the runtime's histogram of how long runnable
// goroutines waited for a P. The runtime measures a fraction of all
// waits; the governor uses only shares of them.
const schedLatencies = "/sched/latencies:seconds"

// meter reads the process's CPU time and scheduling waits. It is used by
// one goroutine.
type meter struct {
	samples []metrics.Sample
}

func newMeter() *meter {
	return &meter{samples: []metrics.Sample{{Name: schedLatencies}}}
}

func (m *meter) read() (reading, error) {
	cpu, err := processCPUTime()
	if err != nil {
		return reading{}, err
	}
	metrics.Read(m.samples)
	v := m.samples[0].Value
	if v.Kind() != metrics.KindFloat64Histogram {
		return reading{}, fmt.Errorf("runtime metric %s is missing", schedLatencies)
	}
	waits, slow := countWaits(v.Float64Histogram())
	return reading{cpu: cpu, waits: waits, slow: slow}, nil
}

// countWaits counts the waits in h, and those whose bucket starts at
// slowWait or later.
func countWaits(h *metrics.Float64Histogram) (waits, slow uint64) {
	for i, c := range h.Counts {
		waits += c
		if h.Buckets[i] >= slowWait.Seconds() {
			slow += c
		}
	}
	return waits, slow
}
