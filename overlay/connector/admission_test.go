package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// probe is one flow sent into the connector's stack as raw packets: a
// TCP SYN, a UDP datagram or an echo request.
type probe struct {
	src   netip.Addr
	dst   netip.AddrPort // the port is ignored for ICMP
	proto netstack.Proto
}

func (p probe) String() string {
	if p.proto == netstack.ProtoICMP {
		return fmt.Sprintf("%v %v->%v", p.proto, p.src, p.dst.Addr())
	}
	return fmt.Sprintf("%v %v->%v", p.proto, p.src, p.dst)
}

func tcp(src netip.Addr, dst string) probe {
	return probe{src, netip.MustParseAddrPort(dst), netstack.ProtoTCP}
}

func udp(src netip.Addr, dst string) probe {
	return probe{src, netip.MustParseAddrPort(dst), netstack.ProtoUDP}
}

func echo(src netip.Addr, dst string) probe {
	return probe{src, netip.AddrPortFrom(netip.MustParseAddr(dst), 0), netstack.ProtoICMP}
}

// send injects p's packet, from source port port.
func (l *lab) send(p probe, port uint16) {
	switch p.proto {
	case netstack.ProtoTCP:
		l.inject(synPacket(netip.AddrPortFrom(p.src, port), p.dst))
	case netstack.ProtoUDP:
		l.inject(udpPacket(netip.AddrPortFrom(p.src, port), p.dst, []byte("probe")))
	case netstack.ProtoICMP:
		l.inject(echoPacket(p.src, p.dst.Addr(), port))
	}
}

// denied returns the denial records of p.
func (l *lab) denied(p probe) []wire.FlowRecord {
	return l.recs.find(func(r wire.FlowRecord) bool {
		return r.Decision == wire.DecisionDeny && r.Src.Addr() == p.src && r.Dst.Addr() == p.dst.Addr().Unmap() &&
			r.Proto == wireProto(p.proto) && (p.proto == netstack.ProtoICMP || r.Dst.Port() == p.dst.Port())
	})
}

// dialedFor reports whether the Dial hook saw p's destination.
func (l *lab) dialedFor(p probe) bool {
	want := dialCall{p.proto.String(), netip.AddrPortFrom(p.dst.Addr().Unmap(), p.dst.Port()).String()}
	return slices.Contains(l.dialed(), want)
}

// decoy listens on addr (TCP and, for a loopback address, UDP) and counts
// what reaches it: a broken admission would dial it for real.
type decoy struct {
	tcp  net.Listener
	udp  net.PacketConn
	hits atomic.Int64
}

func newDecoy(t *testing.T, addr string) *decoy {
	t.Helper()
	d := &decoy{}
	var err error
	if d.tcp, err = net.Listen("tcp", addr); err != nil {
		t.Fatalf("decoy on %s: %v", addr, err)
	}
	go func() {
		for {
			c, err := d.tcp.Accept()
			if err != nil {
				return
			}
			d.hits.Add(1)
			c.Close()
		}
	}()
	port := d.tcp.Addr().(*net.TCPAddr).Port
	host, _, _ := net.SplitHostPort(addr)
	if d.udp, err = net.ListenPacket("udp", net.JoinHostPort(host, fmt.Sprint(port))); err == nil {
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := d.udp.ReadFrom(buf); err != nil {
					return
				}
				d.hits.Add(1)
			}
		}()
	}
	t.Cleanup(func() {
		d.tcp.Close()
		if d.udp != nil {
			d.udp.Close()
		}
	})
	return d
}

func (d *decoy) port() uint16 { return uint16(d.tcp.Addr().(*net.TCPAddr).Port) }

// hostAddr returns one of this host's own addresses that is not loopback,
// or an invalid address.
func hostAddr() netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// lanServers starts the LAN hosts the positive probes reach: TCP and UDP
// echo servers on loopback, keyed as lab.lan is.
func lanServers(t *testing.T) map[string]string {
	t.Helper()
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpLn.Close() })
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	echo, uecho := tcpLn.Addr().String(), pc.LocalAddr().String()
	return map[string]string{
		"tcp 192.0.2.10:80":       echo,
		"tcp 192.0.2.10:22":       echo,
		"tcp [2001:db8::10]:443":  echo,
		"tcp [2001:db8::10]:80":   echo,
		"udp 192.0.2.53:53":       uecho,
		"udp 192.0.2.10:53":       uecho,
		"tcp 198.51.100.10:80":    echo,
		"udp 198.51.100.10:80":    uecho,
		"tcp 203.0.113.5:80":      echo,
		"udp 192.0.2.10:80":       uecho,
		"tcp 192.0.2.10:81":       echo,
		"udp 192.0.2.53:54":       uecho,
		"tcp [2001:db8::10]:8080": echo,
	}
}

// TestAdmissionServesNothingItShouldNot is the admission test: with
// routes as wide as 0.0.0.0/0 and ::/0, decoys listening on loopback and
// on this host's own address (the Dial hook dials those for real), it
// sends the connector's stack every kind of flow it must refuse: a client
// the policy does not allow, a port or protocol outside a client's
// grants, a source that is not an enrolled client, a destination outside
// the served prefixes, loopback, link-local, 0.0.0.0, broadcast,
// multicast, the overlay range, the host's own address, and the
// IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms of such addresses.
// Not one may reach Dial, the pinger or a decoy; each one admission sees
// must be recorded as a denial and answered at once (TCP with a RST,
// UDP and ICMP with administratively prohibited). The allowed flows in
// the same labs must dial, so the lab is known to work.
func TestAdmissionServesNothingItShouldNot(t *testing.T) {
	v4 := newDecoy(t, "127.0.0.1:0")
	v6 := newDecoy(t, "[::1]:0")
	decoys := []*decoy{v4, v6}
	p4, p6 := v4.port(), v6.port()
	host := hostAddr()
	var hostDecoy *decoy
	if host.IsValid() {
		hostDecoy = newDecoy(t, netip.AddrPortFrom(host, 0).String())
		decoys = append(decoys, hostDecoy)
	}
	at := func(addr string, port uint16) string {
		return netip.AddrPortFrom(netip.MustParseAddr(addr), port).String()
	}

	// The guard's cases: refused whatever the routes and the policy say.
	guard := []probe{
		tcp(aliceAddr, at("127.0.0.1", p4)), udp(aliceAddr, at("127.0.0.1", p4)),
		tcp(aliceAddr, at("127.1.2.3", p4)),
		tcp(aliceAddr, at("0.0.0.0", p4)), udp(aliceAddr, at("0.0.0.0", p4)),
		tcp(aliceAddr, "0.1.2.3:80"),
		tcp(aliceAddr, "169.254.169.254:80"), udp(aliceAddr, "169.254.169.254:53"),
		tcp(aliceAddr, "224.0.0.1:80"), udp(aliceAddr, "239.255.255.250:1900"),
		tcp(aliceAddr, "255.255.255.255:80"), udp(aliceAddr, "255.255.255.255:67"),
		tcp(aliceAddr, "240.0.0.1:80"),
		tcp(aliceAddr, "100.96.0.1:80"), udp(aliceAddr, "100.96.0.1:53"), // the connector's overlay address
		tcp(aliceAddr, "100.96.0.3:22"), // another client
		echo(aliceAddr, "127.0.0.1"), echo(aliceAddr, "169.254.169.254"), echo(aliceAddr, "255.255.255.255"), echo(aliceAddr, "0.0.0.0"),

		tcp(alice6Addr, at("::1", p6)), udp(alice6Addr, at("::1", p6)),
		tcp(alice6Addr, "[::]:80"),
		tcp(alice6Addr, "[fe80::1]:80"), udp(alice6Addr, "[fe80::1]:53"),
		tcp(alice6Addr, "[ff02::1]:80"), udp(alice6Addr, "[ff02::fb]:5353"),
		tcp(alice6Addr, at("::ffff:127.0.0.1", p4)), udp(alice6Addr, at("::ffff:127.0.0.1", p4)),
		tcp(alice6Addr, at("::ffff:0.0.0.0", p4)),
		tcp(alice6Addr, "[::ffff:169.254.169.254]:80"),
		tcp(alice6Addr, "[::ffff:255.255.255.255]:80"),
		tcp(alice6Addr, at("::127.0.0.1", p4)),
		tcp(alice6Addr, at("64:ff9b::127.0.0.1", p4)), tcp(alice6Addr, "[64:ff9b::169.254.169.254]:80"),
		tcp(alice6Addr, at("2002:7f00:1::1", p4)),
		echo(alice6Addr, "::1"), echo(alice6Addr, "::ffff:127.0.0.1"), echo(alice6Addr, "fe80::1"),
	}
	// Every address the guard's own table names (each range's first and
	// last address, each embedded form of each refused IPv4 range: NAT64,
	// local-use NAT64, 6to4, Teredo server and client), so that a range
	// added to the table is tried here too: TCP and UDP to the decoys'
	// port, and a ping.
	for _, ex := range routes.GuardExamples() {
		src, port := aliceAddr, p4
		if ex.Addr.Is6() {
			src = alice6Addr
			if !ex.Addr.Is4In6() {
				port = p6
			}
		}
		dst := netip.AddrPortFrom(ex.Addr, port).String()
		guard = append(guard, tcp(src, dst), udp(src, dst), echo(src, ex.Addr.String()))
	}
	if host.IsValid() {
		hs := host.String()
		guard = append(guard,
			tcp(aliceAddr, at(hs, hostDecoy.port())), udp(aliceAddr, at(hs, hostDecoy.port())), echo(aliceAddr, hs),
			tcp(alice6Addr, at("::ffff:"+hs, hostDecoy.port())),
			tcp(alice6Addr, at("64:ff9b::"+hs, hostDecoy.port())),
		)
	} else {
		t.Log("no non-loopback address on this host: the host-address cases are skipped")
	}

	everything := []string{"0.0.0.0/0", "::/0"}
	for _, sc := range []struct {
		name    string
		nm      *wire.NetMap
		refused []probe
		allowed []probe
	}{
		{
			name: "allow-all, routes 0.0.0.0/0 and ::/0",
			nm:   netMap(everything, false, peer("alice-laptop", "alice@example.com", aliceAddr), peer("alice-v6", "alice@example.com", alice6Addr)),
			refused: append(slices.Clone(guard),
				tcp(strayAddr, "192.0.2.10:80"), udp(strayAddr, "192.0.2.53:53"), echo(strayAddr, "192.0.2.60"),
			),
			allowed: []probe{tcp(aliceAddr, "192.0.2.10:80"), udp(aliceAddr, "192.0.2.53:53"), echo(aliceAddr, "192.0.2.60"), tcp(alice6Addr, "[2001:db8::10]:443")},
		},
		{
			name: "a policy granting alice everything, routes 0.0.0.0/0 and ::/0",
			nm: netMap(everything, true,
				peer("alice-laptop", "alice@example.com", aliceAddr, grant("0.0.0.0/0", "*", wire.ProtoAny, 1)),
				peer("alice-v6", "alice@example.com", alice6Addr, grant("::/0", "*", wire.ProtoAny, 1))),
			refused: slices.Clone(guard),
			allowed: []probe{tcp(aliceAddr, "192.0.2.10:80"), udp(aliceAddr, "192.0.2.53:53"), echo(aliceAddr, "192.0.2.60"), tcp(alice6Addr, "[2001:db8::10]:443")},
		},
		{
			name: "a policy, routes 0.0.0.0/0 and ::/0",
			nm: netMap(everything, true,
				peer("alice-laptop", "alice@example.com", aliceAddr,
					grant("192.0.2.0/24", "22", wire.ProtoTCP, 1), grant("192.0.2.0/24", "80", wire.ProtoTCP, 2),
					grant("192.0.2.53/32", "53", wire.ProtoUDP, 3), grant("192.0.2.60/32", "*", wire.ProtoICMP, 4)),
				peer("alice-v6", "alice@example.com", alice6Addr, grant("2001:db8::/64", "443", wire.ProtoTCP, 5)),
				peer("bob-laptop", "bob@example.com", bobAddr)),
			refused: []probe{
				tcp(bobAddr, "192.0.2.10:80"), echo(bobAddr, "192.0.2.60"), // a client the policy does not allow
				tcp(aliceAddr, "192.0.2.10:81"),                                  // a port not in the grant
				udp(aliceAddr, "192.0.2.10:80"), udp(aliceAddr, "192.0.2.53:54"), // a protocol, a port
				echo(aliceAddr, "192.0.2.10"),
				tcp(aliceAddr, "203.0.113.5:80"), // served, but granted to nobody
				tcp(alice6Addr, "[2001:db8::10]:80"), tcp(alice6Addr, "[2001:db8::10]:8080"),
				tcp(strayAddr, "192.0.2.10:80"), udp(strayAddr, "192.0.2.53:53"), echo(strayAddr, "192.0.2.60"),
			},
			allowed: []probe{tcp(aliceAddr, "192.0.2.10:80"), udp(aliceAddr, "192.0.2.53:53"), echo(aliceAddr, "192.0.2.60"), tcp(alice6Addr, "[2001:db8::10]:443")},
		},
		{
			name: "allow-all, routes 192.0.2.0/24 and 2001:db8::/64",
			nm: netMap([]string{"192.0.2.0/24", "2001:db8::/64"}, false,
				peer("alice-laptop", "alice@example.com", aliceAddr), peer("alice-v6", "alice@example.com", alice6Addr)),
			refused: []probe{
				tcp(aliceAddr, "198.51.100.10:80"), udp(aliceAddr, "198.51.100.10:80"), echo(aliceAddr, "198.51.100.10"),
				tcp(alice6Addr, "[2001:db8:1::10]:443"),
			},
			allowed: []probe{tcp(aliceAddr, "192.0.2.10:80"), udp(aliceAddr, "192.0.2.53:53"), tcp(alice6Addr, "[2001:db8::10]:443")},
		},
	} {
		t.Run(sc.name, func(t *testing.T) {
			l := newLab(t, lanServers(t), netip.MustParseAddr("192.0.2.60"), netip.MustParseAddr("192.0.2.10"))
			var hosts []netip.Addr
			if host.IsValid() {
				hosts = append(hosts, host)
			}
			l.apply(sc.nm, hosts...)
			hitsBefore := make([]int64, len(decoys))
			for i, d := range decoys {
				hitsBefore[i] = d.hits.Load()
			}
			port := uint16(40000)
			for _, p := range append(slices.Clone(sc.refused), sc.allowed...) {
				port++
				l.send(p, port)
			}

			// Every allowed probe dials (or pings): the lab works.
			for _, p := range sc.allowed {
				if p.proto == netstack.ProtoICMP {
					waitFor(t, "the ping of "+p.String(), func() bool { return slices.Contains(l.pinged(), p.dst.Addr()) })
				} else {
					waitFor(t, "the dial of "+p.String(), func() bool { return l.dialedFor(p) })
				}
			}
			// Every refused probe that reaches admission is recorded as a
			// denial; gVisor itself drops some (multicast, broadcast)
			// before any handler sees them.
			deadline := time.Now().Add(2 * time.Second)
			var unseen []probe
			for _, p := range sc.refused {
				for len(l.denied(p)) == 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if len(l.denied(p)) == 0 {
					unseen = append(unseen, p)
				}
			}
			if len(unseen) > 0 {
				t.Logf("dropped by the stack before admission: %v", unseen)
			}

			// gVisor's own filters (martian loopback, multicast) are not
			// admission: hand every refused probe to the handler directly too,
			// as a stack without them would, in the form the stack gives
			// (IPv4-mapped addresses unmapped) and as sent.
			for _, p := range sc.refused {
				dsts := []netip.AddrPort{netip.AddrPortFrom(p.dst.Addr().Unmap(), p.dst.Port())}
				if p.dst.Addr().Is4In6() {
					dsts = append(dsts, p.dst)
				}
				for _, dst := range dsts {
					port++
					f := netstack.Flow{Src: netip.AddrPortFrom(p.src, port), Dst: dst, Proto: p.proto}
					if got := l.handle(f); got != "refused" {
						t.Errorf("%v handed to the handler: %s, want it refused", f, got)
					}
				}
			}

			// The heart of it: nothing refused reached Dial, the pinger or a
			// decoy.
			var want []dialCall
			for _, p := range sc.allowed {
				if p.proto != netstack.ProtoICMP {
					want = append(want, dialCall{p.proto.String(), p.dst.String()})
				}
			}
			for _, d := range l.dialed() {
				if !slices.Contains(want, d) {
					t.Errorf("dialled %s %s: admission let through a flow it must refuse", d.network, d.addr)
				}
			}
			for _, a := range l.pinged() {
				if !slices.ContainsFunc(sc.allowed, func(p probe) bool { return p.proto == netstack.ProtoICMP && p.dst.Addr() == a }) {
					t.Errorf("pinged %v: admission let through an echo request it must refuse", a)
				}
			}
			for i, d := range decoys {
				if n := d.hits.Load() - hitsBefore[i]; n != 0 {
					t.Errorf("decoy %v was reached %d times", d.tcp.Addr(), n)
				}
			}

			// Refusals that came through the stack are answered at once, and
			// recorded with the client and the reason.
			for _, p := range sc.refused {
				if slices.Contains(unseen, p) {
					continue
				}
				recs := l.denied(p)
				if r := recs[0]; r.Reason == "" || r.Rule != 0 || (p.src != strayAddr && r.Node == "") {
					t.Errorf("%v: denial record %+v", p, r)
				}
				want := "prohibited"
				switch {
				case p.proto == netstack.ProtoTCP:
					want = "rst"
				case !unicast(p.dst.Addr()):
					continue // no ICMP error answers a packet to a group or a broadcast
				}
				waitFor(t, fmt.Sprintf("the %s answering %v", want, p), func() bool {
					return slices.Contains(l.answers(p.src, p.dst.Addr()), want)
				})
			}
		})
	}
}

func unicast(a netip.Addr) bool {
	a = a.Unmap()
	return !a.IsUnspecified() && !a.IsMulticast() && a != netip.MustParseAddr("255.255.255.255")
}

// handle hands f to the connector's FlowHandler directly and says what
// the handler did: "refused" (TCP: returned without accepting; UDP: called
// Prohibit; ICMP: PingProhibited), or what else.
func (l *lab) handle(f netstack.Flow) string {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	switch f.Proto {
	case netstack.ProtoTCP:
		accepted := false
		l.c.HandleTCP(ctx, f, func() (net.Conn, error) {
			accepted = true
			return nil, errors.New("the lab accepts nothing")
		})
		if accepted {
			return "accepted"
		}
		return "refused"
	case netstack.ProtoUDP:
		conn := &fakeUDP{}
		l.c.HandleUDP(ctx, f, conn)
		if conn.prohibited.Load() {
			return "refused"
		}
		return "not prohibited"
	default:
		if v := l.c.HandlePing(ctx, f, []byte("ping")); v != netstack.PingProhibited {
			return "ping " + v.String()
		}
		return "refused"
	}
}

// fakeUDP is the tunnel side of a UDP flow handed to HandleUDP directly:
// no datagrams, and Prohibit remembered.
type fakeUDP struct {
	net.Conn   // nil: any other call panics
	prohibited atomic.Bool
	closed     atomic.Bool
}

func (c *fakeUDP) Prohibit() { c.prohibited.Store(true) }

func (c *fakeUDP) Read([]byte) (int, error) { return 0, io.EOF }

func (c *fakeUDP) Write(b []byte) (int, error) { return len(b), nil }

func (c *fakeUDP) Close() error {
	c.closed.Store(true)
	return nil
}

// TestAllowConnectorHost: a route with --allow-connector-host lets flows
// reach the connector host's own address through it (the decoy listening
// there is reached), and nothing else: loopback and the rest of the
// guard stay refused, and so does the host's address through a route
// without the flag, with no dial and no hit on the decoys.
func TestAllowConnectorHost(t *testing.T) {
	host := hostAddr()
	if !host.IsValid() {
		t.Skip("no non-loopback address on this host")
	}
	hostDecoy := newDecoy(t, netip.AddrPortFrom(host, 0).String())
	loop := newDecoy(t, "127.0.0.1:0")
	loop6 := newDecoy(t, "[::1]:0")
	hs, hp, lp := host.String(), hostDecoy.port(), loop.port()
	at := func(addr string, port uint16) string {
		return netip.AddrPortFrom(netip.MustParseAddr(addr), port).String()
	}
	toHost := tcp(aliceAddr, at(hs, hp))
	refused := []probe{
		tcp(aliceAddr, at("127.0.0.1", lp)), udp(aliceAddr, at("127.0.0.1", lp)),
		tcp(alice6Addr, at("::1", loop6.port())),
		tcp(alice6Addr, at("::ffff:127.0.0.1", lp)), tcp(alice6Addr, at("64:ff9b::127.0.0.1", lp)),
		tcp(alice6Addr, at("::ffff:"+hs, hp)), // IPv4-mapped: refused whatever the route
		tcp(aliceAddr, "169.254.169.254:80"), tcp(aliceAddr, "100.96.0.1:80"), tcp(aliceAddr, "0.0.0.0:80"),
	}
	for _, ex := range routes.GuardExamples() {
		src := aliceAddr
		if ex.Addr.Is6() {
			src = alice6Addr
		}
		refused = append(refused, tcp(src, netip.AddrPortFrom(ex.Addr, lp).String()))
	}
	for _, sc := range []struct {
		name   string
		served []string
		allow  bool // the host's address is reachable
	}{
		{"the host's /32 with the flag", []string{hs + "/32!", "0.0.0.0/0", "::/0"}, true},
		{"everything with the flag", []string{"0.0.0.0/0!", "::/0!"}, true},
		{"the host's /32 without the flag, everything else with it", []string{hs + "/32", "0.0.0.0/0!", "::/0!"}, false},
		{"no flag", []string{"0.0.0.0/0", "::/0"}, false},
	} {
		t.Run(sc.name, func(t *testing.T) {
			l := newLab(t, lanServers(t))
			l.apply(netMap(sc.served, false, peer("alice-laptop", "alice@example.com", aliceAddr), peer("alice-v6", "alice@example.com", alice6Addr)), host)
			hostBefore, loopBefore, loop6Before := hostDecoy.hits.Load(), loop.hits.Load(), loop6.hits.Load()

			l.send(toHost, 40000)
			if sc.allow {
				waitFor(t, "the dial of "+toHost.String(), func() bool { return l.dialedFor(toHost) })
				waitFor(t, "the host decoy's accept", func() bool { return hostDecoy.hits.Load() == hostBefore+1 })
			} else {
				waitFor(t, "the denial of "+toHost.String(), func() bool { return len(l.denied(toHost)) > 0 })
			}
			port := uint16(41000)
			for _, p := range refused {
				port++
				f := netstack.Flow{Src: netip.AddrPortFrom(p.src, port), Dst: p.dst, Proto: p.proto}
				if got := l.handle(f); got != "refused" {
					t.Errorf("%v: %s, want it refused", f, got)
				}
			}

			for _, d := range l.dialed() {
				if !sc.allow || d != (dialCall{"tcp", toHost.dst.String()}) {
					t.Errorf("dialled %s %s", d.network, d.addr)
				}
			}
			if n := loop.hits.Load() - loopBefore + loop6.hits.Load() - loop6Before; n != 0 {
				t.Errorf("the loopback decoys were reached %d times", n)
			}
			want := hostBefore
			if sc.allow {
				want++
			}
			if got := hostDecoy.hits.Load(); got != want {
				t.Errorf("the host decoy was reached %d times, want %d", got-hostBefore, want-hostBefore)
			}
		})
	}
}
