package netstack

import (
	"errors"
	"os"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

func TestDeviceBasics(t *testing.T) {
	checkLeaks(t)
	s := newStack(t, Config{Handler: &funcs{}, MTU: 1400})
	if ev := recv(t, "EventUp", s.Events()); ev != tun.EventUp {
		t.Errorf("first event = %v, want EventUp", ev)
	}
	if mtu, err := s.MTU(); mtu != 1400 || err != nil {
		t.Errorf("MTU = %d, %v; want 1400", mtu, err)
	}
	if name, err := s.Name(); name == "" || err != nil {
		t.Errorf("Name = %q, %v", name, err)
	}
	if s.File() != nil {
		t.Error("File is not nil")
	}
	if got := s.BatchSize(); got != batchSize {
		t.Errorf("BatchSize = %d, want %d", got, batchSize)
	}
}

// TestReadBatchesAtOffset writes several pings to the node's own address
// in one Write; gVisor answers each inline, so one Read returns them all,
// each at the offset wireguard-go asks for.
func TestReadBatchesAtOffset(t *testing.T) {
	checkLeaks(t)
	s := newStack(t, Config{Handler: &funcs{}})
	const n = 5
	var in [][]byte
	for i := range n {
		pkt := echoPacket(clientV4, nodeV4, false, 1, uint16(i), []byte("batch"))
		in = append(in, append(make([]byte, wgOffset), pkt...))
	}
	if got, err := s.Write(in, wgOffset); got != n || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", got, err, n)
	}
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, wgOffset+1280)
	}
	sizes := make([]int, batchSize)
	got, err := s.Read(bufs, sizes, wgOffset)
	if err != nil || got != n {
		t.Fatalf("Read = %d, %v; want %d, nil", got, err, n)
	}
	for i := range got {
		e, ok := parseEchoReply(t, bufs[i][wgOffset:wgOffset+sizes[i]])
		if !ok || e.Seq != uint16(i) || e.Src != nodeV4 || e.Data != "batch" {
			t.Errorf("packet %d = %+v (echo reply %v), want reply %d", i, e, ok, i)
		}
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	checkLeaks(t)
	s, err := New(Config{Handler: &funcs{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	<-s.Events()
	readErr := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, 1500)}
		_, err := s.Read(bufs, make([]int, 1), 0)
		readErr <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := recv(t, "Read to return", readErr); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close = %v, want os.ErrClosed", err)
	}
	if _, ok := <-s.Events(); ok {
		t.Error("Events not closed after Close")
	}
	if _, err := s.Write([][]byte{echoPacket(clientV4, nodeV4, false, 1, 1, nil)}, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWriteCountsBadPackets(t *testing.T) {
	checkLeaks(t)
	s := newStack(t, Config{Handler: &funcs{}})
	bufs := [][]byte{
		{0x00, 1, 2, 3}, // not IP
		{0x45, 0, 0},    // truncated IPv4
		{0x60, 0},       // truncated IPv6
		{},              // empty: skipped
	}
	n, err := s.Write(bufs, 0)
	if n != 4 || err != nil {
		t.Fatalf("Write = %d, %v; want 4, nil", n, err)
	}
	if got := s.Stats().BadPackets; got != 3 {
		t.Errorf("BadPackets = %d, want 3", got)
	}
	// An offset beyond a buffer is a bad packet too.
	if n, err := s.Write([][]byte{make([]byte, 4)}, wgOffset); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v; want 1, nil", n, err)
	}
	if got := s.Stats().BadPackets; got != 4 {
		t.Errorf("BadPackets = %d, want 4", got)
	}
}

func TestReadDropsOversizedPackets(t *testing.T) {
	checkLeaks(t)
	s := newStack(t, Config{Handler: &funcs{}})
	ping := echoPacket(clientV4, nodeV4, false, 1, 1, make([]byte, 100))
	if _, err := s.Write([][]byte{ping, ping}, 0); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		// Room for 50 bytes after the offset: both replies are too big.
		_, err := s.Read([][]byte{make([]byte, wgOffset+50)}, make([]int, 1), wgOffset)
		readErr <- err
	}()
	waitFor(t, "both replies to be dropped", func() bool { return s.Stats().Oversized == 2 })
	s.Close()
	if err := recv(t, "Read to return", readErr); !errors.Is(err, ErrClosed) {
		t.Errorf("Read = %v, want ErrClosed", err)
	}
}
