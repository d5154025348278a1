// Package testutil holds what the tests of many packages share: waiting
// for a condition with a deadline instead of sleeping, and checking that a
// test left no goroutines of a given kind behind. Only _test.go files
// import it.
package testutil

import (
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test after 10 s. Each
// explain function, if given, adds context to the failure.
func WaitFor(t testing.TB, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			msg := "timed out waiting for " + what
			for _, e := range explain {
				msg += "; " + e()
			}
			t.Fatal(msg)
		}
		<-tick.C
	}
}

// Leaked returns the stacks of the goroutines whose stack mentions any of
// the markers (the caller excluded), separated by blank lines.
func Leaked(markers ...string) string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		for _, m := range markers {
			if strings.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}

// NoLeaks waits up to 5 s until no goroutine's stack mentions any of the
// markers, and fails the test (without stopping it) if some remain.
func NoLeaks(t testing.TB, markers ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		left := Leaked(markers...)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines left behind:\n%s", left)
			return
		}
		<-tick.C
	}
}

// Seeded returns a deterministic, concurrency-safe io.Reader of bytes,
// for IDs and secrets whose output a test compares as text.
func Seeded(seed byte) io.Reader { return &seeded{r: rand.NewChaCha8([32]byte{seed})} }

type seeded struct {
	mu sync.Mutex // guards r
	r  *rand.ChaCha8
}

func (s *seeded) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.Read(p)
}

// EchoTCP starts a loopback TCP server that echoes each connection and
// half-closes it after the client's EOF, and returns its address. It
// stops, and waits for its connections, at cleanup.
func EchoTCP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	return ln.Addr().String()
}
