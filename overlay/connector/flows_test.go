package connector

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedReader is a netstack.BatchReader that hands out the batches it
// is given, as many datagrams per call as the buffers take (the rest on
// the next calls), then io.EOF once they are all read. calls counts
// ReadBatch calls and most is the largest number of buffers one got.
type scriptedReader struct {
	batches     chan [][]byte
	pending     [][]byte
	calls, most int
}

func (r *scriptedReader) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	r.calls++
	r.most = max(r.most, len(bufs))
	if len(r.pending) == 0 {
		b, ok := <-r.batches
		if !ok {
			return 0, io.EOF
		}
		r.pending = b
	}
	n := min(len(bufs), len(r.pending))
	for i, d := range r.pending[:n] {
		sizes[i] = copy(bufs[i], d)
	}
	r.pending = r.pending[n:]
	return n, nil
}

func datagrams(prefix string, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fmt.Appendf(nil, "%s %d", prefix, i))
	}
	return out
}

// receive reads n datagrams from c, or fails the test.
func receive(t *testing.T, c net.PacketConn, n int) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 2048)
	for len(got) < n {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, string(buf[:k]))
	}
	return got
}

func strs(bs [][]byte) []string {
	var out []string
	for _, b := range bs {
		out = append(out, string(b))
	}
	return out
}

// TestPumpToLAN checks that the batched pump sends every datagram of
// every batch, in order, and returns when the tunnel side ends; that it
// starts with one buffer and grows to a full batch only while batches
// fill what it has.
func TestPumpToLAN(t *testing.T) {
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lan, err := net.DialUDP("udp4", nil, ln.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	r := &scriptedReader{batches: make(chan [][]byte, 3)}
	batches := [][][]byte{datagrams("a", 1), datagrams("b", 3*udpBatch), datagrams("c", 7)}
	var want []string
	for _, b := range batches {
		r.batches <- b
		want = append(want, strs(b)...)
	}
	close(r.batches)
	done := make(chan struct{})
	var sent atomic.Int64
	go func() {
		pumpToLAN(lan, r, true, &sent)
		close(done)
	}()
	if got := receive(t, ln, len(want)); !slices.Equal(got, want) {
		t.Errorf("received %q, want %q", got, want)
	}
	wantBytes := 0
	for _, d := range want {
		wantBytes += len(d)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pumpToLAN did not return after the tunnel side ended")
	}
	if got := sent.Load(); got != int64(wantBytes) {
		t.Errorf("counted %d bytes sent, want %d", got, wantBytes)
	}
	// 1, then 3*64 in batches of 1, 2, 4, ..., 64, 64, ...
	if r.most != udpBatch {
		t.Errorf("the largest batch had %d buffers, want %d", r.most, udpBatch)
	}
	if least := 1 + 7 + 2 + 1; r.calls < least {
		t.Errorf("%d reads: the buffers did not start at one and double", r.calls)
	}
}

// TestPumpToLANSurvivesRefusal checks that a port unreachable from the
// LAN host (ECONNREFUSED on the connected socket's next send) costs a
// datagram, not the flow: once something listens, the rest arrive.
func TestPumpToLANSurvivesRefusal(t *testing.T) {
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.LocalAddr().(*net.UDPAddr)
	ln.Close() // nothing listens there now
	lan, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	r := &scriptedReader{batches: make(chan [][]byte)}
	done := make(chan struct{})
	go func() {
		pumpToLAN(lan, r, true, new(atomic.Int64))
		close(done)
	}()
	r.batches <- datagrams("lost", 1) // the port unreachable comes back
	time.Sleep(100 * time.Millisecond)
	ln, err = net.ListenPacket("udp4", addr.String())
	if err != nil {
		t.Fatalf("listening on %v again: %v", addr, err)
	}
	defer ln.Close()
	later := datagrams("later", 5)
	r.batches <- later
	// The first of them may go with the refusal; the rest must arrive.
	got := receive(t, ln, len(later)-1)
	buf := make([]byte, 2048)
	ln.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if k, _, err := ln.ReadFrom(buf); err == nil {
		got = append(got, string(buf[:k]))
	}
	if want := strs(later)[len(later)-len(got):]; !slices.Equal(got, want) {
		t.Errorf("received %q, want %q", got, want)
	}
	close(r.batches)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pumpToLAN did not return after the tunnel side ended")
	}
}
