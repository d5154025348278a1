package wgdev

import (
	"testing"
	"time"
)

func transport(n int) ([][]byte, []int) {
	packets := make([][]byte, n)
	sizes := make([]int, n)
	for i := range packets {
		packets[i] = []byte{wgTransportType, 0, 0, 0}
		sizes[i] = 100
	}
	return packets, sizes
}

func TestInflightCounts(t *testing.T) {
	for _, tt := range []struct {
		name  string
		first byte
		size  int
		want  int64
	}{
		{"data", wgTransportType, 100, 1},
		{"keepalive", wgTransportType, keepaliveLen, 0},
		{"handshake", 1, 148, 0},
		{"skipped by the Bind", wgTransportType, 0, 0},
	} {
		l := newInflight()
		l.received([][]byte{{tt.first, 0, 0, 0}}, []int{tt.size}, 1)
		if got := l.n.Load(); got != tt.want {
			t.Errorf("%s: counted %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestInflightWaits checks that a reader waits while maxInflight data
// datagrams are on their way to the TUN, resumes as they are written, and
// gives up on a count that no longer drains.
func TestInflightWaits(t *testing.T) {
	l := newInflight()
	packets, sizes := transport(maxInflight)
	l.received(packets, sizes, maxInflight)

	done := make(chan struct{})
	go func() {
		l.wait()
		close(done)
	}()
	// Writes that keep coming keep it waiting past stallAfter while
	// the count stays at the bound.
	for range 3 {
		time.Sleep(stallAfter / 2)
		l.written(1)
		l.received(packets, sizes, 1)
	}
	select {
	case <-done:
		t.Fatal("the reader went on while the TUN side was still full")
	default:
	}
	l.written(1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader still waits below the bound")
	}

	// A count that stops draining (datagrams dropped after decryption)
	// is forgotten after stallAfter.
	l.received(packets, sizes, maxInflight)
	start := time.Now()
	l.wait()
	if waited := time.Since(start); waited < stallAfter {
		t.Errorf("gave up after %v, before stallAfter", waited)
	}
	if n := l.n.Load(); n != 0 {
		t.Errorf("after a stall the count is %d, want 0", n)
	}
	l.written(5)
	if n := l.n.Load(); n != 0 {
		t.Errorf("the count went to %d, below zero", n)
	}
}
