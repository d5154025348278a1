package client_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/proxy"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// TestUserspaceDialInProcess runs the userspace mode end to end in one
// process, without root: a real coordinator, relay and connector, and the
// engine on the Userspace platform. DialContext sends what the tunnel
// carries through the netstack (the connector dials it on its LAN), and
// everything else directly from this machine (the engine's Dial).
func TestUserspaceDialInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := coordtest.Start(t, coordtest.Options{Relay: true})
	lanHost := netip.MustParseAddr("192.0.2.10")
	atConnector := make(chan string, 16)
	startConnector(t, ctx, s, lanHost, atConnector)
	if _, err := s.Coord.AddHost(ctx, wire.AddHostRequest{Name: "lanhost", Address: lanHost.String()}); err != nil {
		t.Fatal(err)
	}
	stateDir, _ := enrollClient(t, ctx, s)
	directEcho, _ := lanEcho(t)
	_, directPort, _ := net.SplitHostPort(directEcho)

	direct := make(chan string, 16)
	eng, err := client.New(client.Config{
		StateDir:  stateDir,
		Platform:  client.NewUserspace(nil),
		Userspace: true,
		Proxies:   func() ctl.Proxies { return ctl.Proxies{SOCKS5: "127.0.0.1:1080"} },
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			direct <- network + " " + address
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.DialContext(ctx, "tcp", "100.96.0.1:22"); err == nil || !strings.Contains(err.Error(), "the tunnel is down") {
		t.Errorf("overlay dial while down = %v, want the tunnel is down", err)
	}
	if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	defer eng.Down(context.Background())
	st := eng.Status(ctx)
	if st.Mode != ctl.ModeUserspace || st.Interface != "" || st.Proxies.SOCKS5 != "127.0.0.1:1080" || len(st.Routes) != 1 || !st.Routes[0].Live {
		t.Errorf("status = %+v", st)
	}

	// where says which way a dial went: "tunnel" (the connector dialled
	// it), "direct" (this machine did), or "" (neither, so far).
	where := func() (string, string) {
		select {
		case d := <-atConnector:
			return "tunnel", d
		case d := <-direct:
			return "direct", d
		case <-time.After(5 * time.Second):
			return "", ""
		}
	}
	for _, tc := range []struct {
		name, network, address string
		via, seen              string // the path and what it dialled
		err                    string // the dial fails with this
	}{
		{name: "routed address", network: "tcp", address: "192.0.2.10:80", via: "tunnel", seen: "tcp 192.0.2.10:80"},
		{name: "named host", network: "tcp", address: "lanhost:80", via: "tunnel", seen: "tcp 192.0.2.10:80"},
		{name: "named host, any case, final dot", network: "tcp4", address: "LanHost.:80", via: "tunnel", seen: "tcp 192.0.2.10:80"},
		{name: "udp, routed", network: "udp", address: "192.0.2.10:53", via: "tunnel", seen: "udp 192.0.2.10:53"},
		{name: "not routed", network: "tcp", address: directEcho, via: "direct", seen: "tcp " + directEcho},
		{name: "not routed, by the system resolver", network: "tcp4", address: "localhost:" + directPort, via: "direct", seen: "tcp 127.0.0.1:" + directPort},
		{name: "refused at the lan", network: "tcp", address: "192.0.2.10:81", via: "tunnel", seen: "tcp 192.0.2.10:81", err: "refused"},
		{name: "bad network", network: "ip", address: "192.0.2.10:80", err: `network "ip" is not tcp or udp`},
		{name: "no port", network: "tcp", address: "192.0.2.10", err: "missing port"},
		{name: "no ipv6 address", network: "tcp6", address: "lanhost:80", err: "no ipv6 address for lanhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			defer dcancel()
			c, err := eng.DialContext(dctx, tc.network, tc.address)
			checkPath := func() {
				t.Helper()
				if tc.via == "" {
					return
				}
				if via, seen := where(); via != tc.via || seen != tc.seen {
					t.Errorf("dial went %s (%s), want %s (%s)", via, seen, tc.via, tc.seen)
				}
			}
			if tc.err != "" {
				checkPath()
				if err == nil {
					c.Close()
					t.Fatalf("dial succeeded, want %q", tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("dial error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DialContext: %v", err)
			}
			defer c.Close()
			msg := []byte("warren userspace")
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("echo: %q, %v", got, err)
			}
			checkPath() // a UDP flow reaches the connector with its first datagram
		})
	}

	// The HTTP proxy, with the engine as its Dialer: CONNECT by name
	// through the tunnel.
	srv, err := proxy.New(proxy.Config{HTTP: "127.0.0.1:0", Dialer: eng})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- srv.Run(pctx) }()
	defer func() {
		pcancel()
		<-proxyDone
	}()
	testutil.WaitFor(t, "the proxy to listen", func() bool { _, h := srv.Addrs(); return h != nil })
	_, httpAddr := srv.Addrs()
	pc, err := net.Dial("tcp", httpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(pc, "CONNECT lanhost:80 HTTP/1.1\r\nHost: lanhost:80\r\n\r\n")
	br := bufio.NewReader(pc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT lanhost:80 = %v, %v", resp, err)
	}
	if via, seen := where(); via != "tunnel" || seen != "tcp 192.0.2.10:80" {
		t.Errorf("the proxy's dial went %s (%s), want through the tunnel", via, seen)
	}
	io.WriteString(pc, "through the proxy")
	got := make([]byte, len("through the proxy"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "through the proxy" {
		t.Errorf("echo through the proxy: %q, %v", got, err)
	}

	// why resolves names as DialContext does.
	w, err := eng.Why(ctx, ctl.WhyQuery{Host: "lanhost"})
	if err != nil || !w.Tunnelled || w.IP != lanHost {
		t.Errorf("why lanhost = %+v, %v", w, err)
	}
	w, err = eng.Why(ctx, ctl.WhyQuery{Host: "localhost"})
	if err != nil || w.Tunnelled {
		t.Errorf("why localhost = %+v, %v", w, err)
	}
}
