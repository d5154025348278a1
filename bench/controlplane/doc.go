// Package controlplane measures the coordinator under load: how long a
// route change takes to reach every connected node (p50 and p99 over the
// nodes), and how much coordinator heap each connected node costs.
//
// The coordinator runs in the benchmark's process; the simulated nodes run
// in a child process (the test binary re-executed), each holding a real
// control session over TLS, so the heap figure is the coordinator's alone.
// It has no non-test code; run it with `make bench`.
package controlplane
