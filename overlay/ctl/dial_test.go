package ctl

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/internal/testutil"
)

// echoThrough sends msg through c, half-closes, and returns what comes
// back until EOF.
func echoThrough(c net.Conn, msg []byte) ([]byte, error) {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	if werr := <-errc; err == nil {
		err = werr
	}
	return got.Bytes(), err
}

func TestDial(t *testing.T) {
	b := &fakeBackend{echo: testutil.EchoTCP(t)}
	c := serve(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	conn, err := c.Dial(ctx, "echo", 7)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	msg := bytes.Repeat([]byte("through the daemon "), 50000)
	got, err := echoThrough(conn, msg)
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("echo: %d bytes of %d, %v", len(got), len(msg), err)
	}
	conn.Close()

	// A failed dial is one line, and nothing is switched.
	if conn, err := c.Dial(ctx, "elsewhere", 22); err == nil {
		conn.Close()
		t.Error("Dial to a refused host succeeded")
	} else if want := "dialing elsewhere:22: connection refused"; err.Error() != want {
		t.Errorf("Dial error = %q, want %q", err, want)
	}
}

// TestDialEndsWithServer: connections carried at shutdown are cut, and
// Serve waits for them.
func TestDialEndsWithServer(t *testing.T) {
	b := &fakeBackend{echo: testutil.EchoTCP(t)}
	dir := t.TempDir()
	ln, err := Listen(dir + "/warren.sock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(b, nil).Serve(ctx, ln) }()
	c := NewClient(dir + "/warren.sock")
	defer c.Close()
	conn, err := c.Dial(context.Background(), "echo", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return with a dial open")
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("reading a cut dial: %v", err)
	}
}

func TestDialNoDaemon(t *testing.T) {
	c := NewClient(t.TempDir() + "/warren.sock")
	if _, err := c.Dial(context.Background(), "echo", 7); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Dial without a daemon = %v", err)
	}
}
