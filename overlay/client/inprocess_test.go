package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	wgnetstack "golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/connector"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/platform"
	"github.com/warrennet/warren/test/coordtest"
)

// fakePlatform gives the engine a userspace TUN (a gVisor stack the test
// dials from) and records routes instead of installing them: the whole
// client runs without root.
type fakePlatform struct {
	addr netip.Addr

	mu     sync.Mutex
	tnet   *wgnetstack.Net
	routes []netip.Prefix
	sets   int
}

func (p *fakePlatform) CreateTUN(string, int) (tun.Device, error) {
	dev, tnet, err := wgnetstack.CreateNetTUN([]netip.Addr{p.addr}, nil, 1280)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.tnet = tnet
	p.mu.Unlock()
	return dev, nil
}

func (p *fakePlatform) NewRouter() (client.Router, error) { return (*fakeRouter)(p), nil }
func (p *fakePlatform) Cleanup(string) error              { return nil }
func (p *fakePlatform) DefaultGateways() ([]netip.Addr, error) {
	return nil, nil
}
func (p *fakePlatform) LocalPrefixes() ([]netip.Prefix, error) { return nil, nil }

func (p *fakePlatform) net() *wgnetstack.Net {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tnet
}

func (p *fakePlatform) installed() []netip.Prefix {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.routes)
}

type fakeRouter fakePlatform

func (r *fakeRouter) Set(cfg *platform.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sets++
	r.routes = nil
	if cfg != nil {
		r.routes = slices.Clone(cfg.Routes)
	}
	return nil
}

func (r *fakeRouter) Close() error { return nil }

// lanEcho is a loopback TCP echo server standing in for a LAN host.
func lanEcho(t *testing.T) (tcp, udp string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	})
	return testutil.EchoTCP(t), pc.LocalAddr().String()
}

// TestClientToConnectorInProcess runs the whole data plane in one process
// without root: a real coordinator and relay on loopback, the real
// connector with its gVisor stack (its LAN dials redirected to loopback
// servers), and the real client engine over a userspace TUN. Traffic from
// the client to 192.0.2.10 crosses WireGuard through the relay.
func TestClientToConnectorInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := coordtest.Start(t, coordtest.Options{Relay: true})
	lanHost := netip.MustParseAddr("192.0.2.10")
	startConnector(t, ctx, s, lanHost, nil)
	stateDir, id := enrollClient(t, ctx, s)
	plat := &fakePlatform{addr: id.Node.Address}
	// In TUN mode DialContext leaves even tunnelled destinations to the
	// kernel, whose routes lead into the TUN.
	kernel := make(chan string, 1)
	eng, err := client.New(client.Config{StateDir: stateDir, Platform: plat, Dial: func(_ context.Context, network, address string) (net.Conn, error) {
		kernel <- network + " " + address
		return nil, errors.New("no kernel here")
	}})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	if err := eng.Up(ctx, ctl.UpRequest{}, func(p ctl.Progress) { steps = append(steps, p.Message) }); err != nil {
		t.Fatalf("Up: %v (steps %q)", err, steps)
	}
	defer eng.Down(context.Background())
	if got := plat.installed(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}) {
		t.Errorf("routes installed = %v, want [192.0.2.0/24]", got)
	}
	tnet := plat.net()
	if _, err := eng.DialContext(ctx, "tcp", "192.0.2.10:22"); err == nil {
		t.Error("TUN mode DialContext succeeded without the kernel")
	}
	select {
	case got := <-kernel:
		if got != "tcp 192.0.2.10:22" {
			t.Errorf("the kernel was asked for %q", got)
		}
	default:
		t.Error("TUN mode DialContext did not go through the kernel")
	}
	if st := eng.Status(ctx); st.Mode != ctl.ModeTUN || st.Interface == "" {
		t.Errorf("TUN mode status: mode %q, interface %q", st.Mode, st.Interface)
	}

	// TCP through WireGuard, the relay and the connector's stack.
	c, err := tnet.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(lanHost, 80))
	if err != nil {
		t.Fatalf("dial 192.0.2.10:80 through the tunnel: %v", err)
	}
	msg := bytes.Repeat([]byte("warren "), 20000)
	go c.Write(msg)
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("echo through the tunnel: %v", err)
	}
	c.Close()

	// UDP.
	u, err := tnet.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(lanHost, 53))
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("ping?"))
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "ping?" {
		t.Errorf("udp echo: %q, %v", buf[:n], err)
	}
	u.Close()

	// A refused dial on the LAN side refuses the client's connection.
	start := time.Now()
	if c, err := tnet.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(lanHost, 81)); err == nil {
		c.Close()
		t.Error("dial to a refused port succeeded")
	} else if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused dial took %v to fail", d)
	}
	// Outside the served prefixes: nothing.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	if c, err := tnet.DialContextTCPAddrPort(dctx, netip.MustParseAddrPort("198.51.100.99:80")); err == nil {
		c.Close()
		t.Error("dial outside the served prefixes succeeded")
	}
	dcancel()

	st := eng.Status(ctx)
	if st.State != ctl.StateUp || len(st.Routes) != 1 || !st.Routes[0].Live || !st.Relay.Connected {
		t.Errorf("status = %+v", st)
	}
	// The flows above went through the inbound filter, whose answers it
	// let back in.
	if st.Inbound.Flows < 2 {
		t.Errorf("inbound filter holds %d flows, want the TCP and UDP flows at least", st.Inbound.Flows)
	}

	// routes rm reaches the client's routes within 2 s.
	if err := s.Coord.RemoveRoute(ctx, "192.0.2.0/24"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(plat.installed()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("route still installed 2 s after routes rm: %v", plat.installed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := eng.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if st := eng.Status(ctx); st.State != ctl.StateDown {
		t.Errorf("state after Down = %s", st.State)
	}
}

// startConnector starts the real connector "office" serving 192.0.2.0/24,
// its LAN dials redirected to loopback echo servers: lanHost's TCP port 80
// and UDP port 53 answer, everything else is refused. dialled, if not
// nil, receives each LAN dial's destination. It stops at cleanup.
func startConnector(t *testing.T, ctx context.Context, s *coordtest.Server, lanHost netip.Addr, dialled chan<- string) {
	t.Helper()
	tcpEcho, udpEcho := lanEcho(t)
	redirect := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dialled != nil {
			dialled <- network + " " + addr
		}
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || ap.Addr() != lanHost {
			return nil, errors.New("connection refused")
		}
		var d net.Dialer
		switch {
		case network == "tcp" && ap.Port() == 80:
			return d.DialContext(ctx, network, tcpEcho)
		case network == "udp" && ap.Port() == 53:
			return d.DialContext(ctx, network, udpEcho)
		}
		return nil, errors.New("connection refused")
	}
	ctx, cancel := context.WithCancel(ctx)
	conn, err := connector.New(ctx, connector.Config{
		StateDir: t.TempDir(),
		Token:    s.Token(t, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"}).String(),
		Dial:     redirect,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	connDone := make(chan error, 1)
	go func() { connDone <- conn.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-connDone
	})
	if _, err := s.Coord.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.0.2.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
}

// enrollClient enrolls a client "laptop" and returns its state directory
// and identity.
func enrollClient(t *testing.T, ctx context.Context, s *coordtest.Server) (string, *nodestate.Identity) {
	t.Helper()
	stateDir := t.TempDir()
	dir, err := nodestate.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.Enroll(ctx, dir, s.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"}).String(), wire.RoleClient, "")
	if err != nil {
		t.Fatal(err)
	}
	return stateDir, id
}
