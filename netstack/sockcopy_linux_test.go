package netstack

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// pacedCopy copies src to dst in reads of at most 32 KiB, one per
// millisecond: a reader slower than the connector's copy, so that the
// buffers between them fill and the copy has to wait for room.
func pacedCopy(dst io.Writer, src io.Reader) (int64, error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		<-tick.C
		m, err := src.Read(buf)
		dst.Write(buf[:m])
		n += int64(m)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// TestTCPDirectCopyUnderBackPressure checks the copy from the LAN socket
// into gVisor that skips the proxy's buffer (sockcopy_linux.go), and the
// buffered copy the other way, when the far side reads slowly: every byte
// arrives, in order, and the stream's end is passed on.
func TestTCPDirectCopyUnderBackPressure(t *testing.T) {
	// More than the socket and gVisor buffers between the copy and the
	// slow reader can hold, so that the copy waits for room.
	const size = 16 << 20
	dst := netip.MustParseAddrPort("192.0.2.14:9000")
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)

	t.Run("to a slow LAN host", func(t *testing.T) {
		checkLeaks(t)
		got := make(chan [32]byte, 1)
		srv := newServer(t, func(c *net.TCPConn) {
			c.SetReadBuffer(64 << 10) // no autotuning: the connector's writes find it full
			h := sha256.New()
			pacedCopy(h, c)
			got <- [32]byte(h.Sum(nil))
		})
		c, _, results := dialProxied(t, dst, srv.addr())
		c.SetWriteDeadline(time.Now().Add(testTimeout))
		if _, err := c.Write(data); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.CloseWrite()
		if sum := recv(t, "the LAN host's checksum", got); sum != want {
			t.Errorf("the LAN host got different bytes")
		}
		c.Close()
		wantProxied(t, results, Counts{AToB: size})
	})

	t.Run("from a LAN host to a slow client", func(t *testing.T) {
		checkLeaks(t)
		srv := newServer(t, func(c *net.TCPConn) {
			c.Write(data)
			c.CloseWrite()
			io.Copy(io.Discard, c)
		})
		c, _, results := dialProxied(t, dst, srv.addr())
		c.SetReadDeadline(time.Now().Add(testTimeout))
		hash := sha256.New()
		n, err := pacedCopy(hash, c)
		if err != nil || n != size {
			t.Fatalf("read %d bytes, err %v; want %d and EOF", n, err, size)
		}
		if [32]byte(hash.Sum(nil)) != want {
			t.Errorf("the client got different bytes")
		}
		c.Close()
		wantProxied(t, results, Counts{BToA: size})
	})

	t.Run("a LAN host that resets", func(t *testing.T) {
		checkLeaks(t)
		srv := newServer(t, func(c *net.TCPConn) {
			io.ReadFull(c, make([]byte, 1000))
			c.SetLinger(0) // close with a RST
			c.Close()
		})
		c, _, results := dialProxied(t, dst, srv.addr())
		c.SetDeadline(time.Now().Add(testTimeout))
		// Only what the LAN host reads: a write still going on when the
		// reset comes would take the error, as on Linux, and a read after
		// it would see the end of the stream.
		if _, err := c.Write(data[:1000]); err != nil {
			t.Fatalf("write: %v", err)
		}
		// The reset reaches the client as a reset, not as an end of
		// stream that would make a cut response look whole.
		_, err := io.ReadAll(c)
		if reset := (&tcpip.ErrConnectionReset{}).String(); err == nil || !strings.Contains(err.Error(), reset) {
			t.Errorf("the client's read ended with %v, want %q", err, reset)
		}
		if res := recv(t, "the proxy to finish", results); res.err == nil {
			t.Errorf("Proxy returned no error for a LAN host that reset the flow")
		}
	})
}
