package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// udpEchoServer echoes datagrams on a loopback socket until cleanup.
func udpEchoServer(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return c.LocalAddr().String()
}

// udpRelay is a HandleUDP that relays the flow to a loopback server until
// the flow's conn fails, then reports the flow on ended.
func udpRelay(target string, started, ended chan<- Flow) func(ctx context.Context, f Flow, conn net.Conn) {
	return func(ctx context.Context, f Flow, conn net.Conn) {
		started <- f
		defer func() { ended <- f }()
		up, err := net.Dial("udp", target)
		if err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64<<10)
			for {
				n, err := up.Read(buf)
				if err != nil {
					return
				}
				conn.Write(buf[:n])
			}
		}()
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			up.Write(buf[:n])
		}
		up.Close()
		<-done
	}
}

func TestUDPEchoAndIdleTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		dst  netip.AddrPort
		src  netip.Addr
	}{
		{"ipv4", netip.MustParseAddrPort("192.0.2.53:53"), clientV4},
		{"ipv6", netip.MustParseAddrPort("[2001:db8::53]:53"), clientV6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			const idle = 200 * time.Millisecond
			target := udpEchoServer(t)
			started, ended := make(chan Flow, 2), make(chan Flow, 2)
			p := newPair(t, Config{Handler: &funcs{udp: udpRelay(target, started, ended)}, UDPIdleTimeout: idle})

			c, err := p.dialUDP(tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exchange := func(msg string) {
				t.Helper()
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatalf("write: %v", err)
				}
				buf := make([]byte, 100)
				c.SetReadDeadline(time.Now().Add(testTimeout))
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if got := string(buf[:n]); got != msg {
					t.Errorf("echo = %q, want %q", got, msg)
				}
			}

			exchange("query one")
			f := recv(t, "the flow", started)
			if f.Proto != ProtoUDP || f.Dst != tc.dst || f.Src.Addr() != tc.src || f.Src.Port() == 0 {
				t.Errorf("flow = %v, want udp %v:* -> %v", f, tc.src, tc.dst)
			}
			exchange("query two") // same flow: no new HandleUDP
			last := time.Now()
			if st := p.stack.Stats(); st.UDPFlows != 1 {
				t.Errorf("UDPFlows = %d, want 1", st.UDPFlows)
			}

			recv(t, "the idle flow to end", ended)
			if d := time.Since(last); d < idle {
				t.Errorf("flow ended %v after its last datagram, want >= %v", d, idle)
			}
			waitFor(t, "the flow to be forgotten", func() bool { return p.stack.Stats().UDPFlows == 0 })
			select {
			case f := <-started:
				t.Fatalf("unexpected second flow %v", f)
			default:
			}

			// The next datagram opens a new flow.
			exchange("query three")
			if f2 := recv(t, "a new flow", started); f2 != f {
				t.Errorf("new flow = %v, want %v again", f2, f)
			}
		})
	}
}

func TestUDPFlowsAreBounded(t *testing.T) {
	checkLeaks(t)
	started := make(chan Flow, 3)
	h := &funcs{udp: func(ctx context.Context, f Flow, conn net.Conn) {
		started <- f
		<-ctx.Done()
	}}
	p := newPair(t, Config{Handler: h, MaxUDPFlows: 2})
	dst := netip.MustParseAddrPort("192.0.2.54:5353")
	for i := range 3 {
		c, err := p.dialUDP(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			recv(t, "a flow", started)
		}
	}
	waitFor(t, "the third flow to be dropped", func() bool { return p.stack.Stats().UDPDropped == 1 })
	if st := p.stack.Stats(); st.UDPFlows != 2 {
		t.Errorf("UDPFlows = %d, want 2", st.UDPFlows)
	}
}

func TestUDPConnAddresses(t *testing.T) {
	checkLeaks(t)
	type addrs struct{ local, remote string }
	got := make(chan addrs, 1)
	h := &funcs{udp: func(ctx context.Context, f Flow, conn net.Conn) {
		got <- addrs{conn.LocalAddr().String(), conn.RemoteAddr().String()}
	}}
	p := newPair(t, Config{Handler: h})
	dst := netip.MustParseAddrPort("192.0.2.55:123")
	c, err := p.dialUDP(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	a := recv(t, "the handler", got)
	if a.local != dst.String() || a.remote != c.LocalAddr().String() {
		t.Errorf("conn local %s remote %s, want %s and %s", a.local, a.remote, dst, c.LocalAddr())
	}
}

// TestUDPReadBatch checks that ReadBatch returns a flow's queued datagrams
// in order, each whole and with its own length, several per call once
// they queue up, and the first one alone when no more are queued.
func TestUDPReadBatch(t *testing.T) {
	checkLeaks(t)
	const total = 200
	got := make(chan []string, 1)
	release := make(chan struct{})
	h := &funcs{udp: func(ctx context.Context, f Flow, conn net.Conn) {
		br, ok := conn.(BatchReader)
		if !ok {
			got <- nil
			return
		}
		<-release // let the rest of the datagrams queue up
		bufs := make([][]byte, 64)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, len(bufs))
		var seen []string
		calls := 0
		for len(seen) < total {
			n, err := br.ReadBatch(bufs, sizes)
			if err != nil {
				break
			}
			calls++
			for i := range n {
				seen = append(seen, string(bufs[i][:sizes[i]]))
			}
		}
		if calls >= total {
			seen = append(seen, "one datagram per call")
		}
		got <- seen
	}}
	p := newPair(t, Config{Handler: h})
	c, err := p.dialUDP(netip.MustParseAddrPort("192.0.2.56:9999"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []string
	for i := range total {
		d := fmt.Sprintf("datagram %d %s", i, strings.Repeat("x", i))
		want = append(want, d)
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	seen := recv(t, "the handler", got)
	if seen == nil {
		t.Fatal("the UDP conn is not a BatchReader")
	}
	if !slices.Equal(seen, want) {
		t.Errorf("read %d datagrams %.80q…, want %d in order", len(seen), seen, len(want))
	}
}
