package wgdev

import (
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

func TestInflightCounts(t *testing.T) {
	for _, tt := range []struct {
		name  string
		first byte
		size  int
		want  int
	}{
		{"data", wgTransportType, 100, 1},
		{"keepalive", wgTransportType, keepaliveLen, 0},
		{"handshake", 1, 148, 0},
		{"skipped by the Bind", wgTransportType, 0, 0},
	} {
		if got := dataMessages([][]byte{{tt.first, 0, 0, 0}}, []int{tt.size}, 1); got != tt.want {
			t.Errorf("%s: counted %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestInflightWaits checks that a reader waits while maxInflight data
// datagrams are on their way to the TUN, resumes as they are written, and
// gives up on a count that no longer drains.
func TestInflightWaits(t *testing.T) {
	l := newInflight()
	// Writes every 20 ms keep it waiting through a 200 ms stall limit,
	// with room for a loaded machine (-race, make test).
	l.stall = 200 * time.Millisecond
	l.received(maxInflight)

	done := make(chan struct{})
	go func() {
		l.wait()
		close(done)
	}()
	// Writes that keep coming keep it waiting past stallAfter while
	// the count stays at the bound.
	for range 15 {
		time.Sleep(l.stall / 10)
		l.received(1) // first, so that the count never dips below the bound
		l.written(1)
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
	l.received(maxInflight)
	start := time.Now()
	l.wait()
	if waited := time.Since(start); waited < l.stall {
		t.Errorf("gave up after %v, before the stall limit %v", waited, l.stall)
	}
	if n := l.n.Load(); n != 0 {
		t.Errorf("after a stall the count is %d, want 0", n)
	}
	l.written(5)
	if n := l.n.Load(); n != 0 {
		t.Errorf("the count went to %d, below zero", n)
	}
}

// batchTUN is a TUN that always has a full batch of packets to read.
type batchTUN struct{ tun.Device }

func (batchTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i := range bufs {
		sizes[i] = 100
	}
	return len(bufs), nil
}

// nullBind sends nowhere.
type nullBind struct{ conn.Bind }

func (nullBind) Send([][]byte, conn.Endpoint) error { return nil }

// TestOutboundBackPressure checks that the device stops reading its TUN
// while maxInflight packets read from it have not been sent, and that
// only sent data messages, not handshakes or keepalives, count as sent.
func TestOutboundBackPressure(t *testing.T) {
	in, out := newInflight(), newInflight()
	out.stall = time.Hour // this test is not about stalls
	tn := inflightTUN{batchTUN{}, in, out}
	b := inflightBind{nullBind{}, in, out}
	bufs := make([][]byte, 128)
	sizes := make([]int, len(bufs))
	for read := 0; read < maxInflight; {
		n, err := tn.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		read += n
	}

	done := make(chan struct{})
	go func() {
		tn.Read(bufs, sizes, 0)
		close(done)
	}()
	// Handshakes and keepalives keep going out; they are not the
	// packets read from the TUN.
	handshake := []byte{1, 0, 0, 0}
	keepalive := make([]byte, keepaliveLen)
	keepalive[0] = wgTransportType
	for range 3 {
		if err := b.Send([][]byte{handshake, keepalive}, nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the TUN was read while the socket side was full")
	default:
	}
	data := make([]byte, 100)
	data[0] = wgTransportType
	if err := b.Send([][]byte{data}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the TUN is still not read below the bound")
	}
	if n := in.n.Load(); n != 0 {
		t.Errorf("sending counted %d on the receive side", n)
	}
}
