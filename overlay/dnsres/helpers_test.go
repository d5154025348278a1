package dnsres

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// upstream is a real miekg/dns server on loopback, UDP and TCP on one
// port, standing for a site's or the system's resolver. It answers A and
// AAAA for every name with fixed addresses and TTL 1234, NXDOMAIN for
// names starting "nx.", and, when truncate is set, only TC=1 over UDP.
type upstream struct {
	a        netip.Addr // the A answer; invalid: 192.168.0.10
	truncate bool
	spoof    bool         // over UDP, first an answer with another ID and another name
	udp, tcp atomic.Int64 // queries seen by transport
	lastEDNS atomic.Int64 // UDP size of the last query's OPT, 0 without one
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, isUDP := w.LocalAddr().(*net.UDPAddr)
	if isUDP {
		u.udp.Add(1)
	} else {
		u.tcp.Add(1)
	}
	u.lastEDNS.Store(0)
	if o := req.IsEdns0(); o != nil {
		u.lastEDNS.Store(int64(o.UDPSize()))
	}
	m := new(dns.Msg)
	m.SetReply(req)
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(o.UDPSize(), o.Do())
	}
	q := req.Question[0]
	if u.spoof && isUDP {
		bad := new(dns.Msg)
		bad.SetQuestion("evil.example.", q.Qtype)
		bad.Id = req.Id + 1
		bad.Response = true
		bad.Answer = append(bad.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
			A:   net.IPv4(6, 6, 6, 6),
		})
		_ = w.WriteMsg(bad)
		bad.Id = req.Id // right ID, wrong question
		_ = w.WriteMsg(bad)
	}
	switch {
	case u.truncate && isUDP:
		m.Truncated = true
	case strings.HasPrefix(strings.ToLower(q.Name), "nx."):
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1234},
			A:   u.v4(),
		})
	case q.Qtype == dns.TypeAAAA:
		m.Answer = append(m.Answer, &dns.AAAA{
			Hdr:  dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 1234},
			AAAA: net.ParseIP("fd00::10"),
		})
	}
	_ = w.WriteMsg(m)
}

func (u *upstream) v4() net.IP {
	if u.a.IsValid() {
		return u.a.AsSlice()
	}
	return net.IPv4(192, 168, 0, 10)
}

// serve runs h on a loopback UDP socket and a TCP listener of the same
// port until the test ends, and returns the address.
func serve(t *testing.T, h dns.Handler) netip.AddrPort {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		l, err := net.Listen("tcp", ap.String())
		if err != nil {
			pc.Close() // the port is taken for TCP: another one
			continue
		}
		start(t, &dns.Server{PacketConn: pc, Handler: h})
		start(t, &dns.Server{Listener: l, Handler: h})
		return ap
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return netip.AddrPort{}
}

func start(t *testing.T, s *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- s.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("starting dns server: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Shutdown()
		<-done
	})
}

// blackhole returns a loopback address whose UDP socket and TCP listener
// accept and never answer.
func blackhole(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// down returns a loopback address nothing listens on.
func down(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return ap
}

// tunnel is the fake Dialer standing for the tunnel: it maps each site
// server's address (port 53) to a loopback server, and counts dials.
type tunnel struct {
	mu    sync.Mutex // guards to
	to    map[netip.Addr]netip.AddrPort
	dials atomic.Int64
}

func (tn *tunnel) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	tn.dials.Add(1)
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, err
	}
	if ap.Port() != 53 {
		return nil, fmt.Errorf("tunnel: dial %s: want port 53", address)
	}
	tn.mu.Lock()
	real, ok := tn.to[ap.Addr()]
	tn.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("tunnel: no route to %s", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real.String())
}

// query asks the resolver served on addr over network.
func query(t *testing.T, network string, addr netip.AddrPort, m *dns.Msg) (*dns.Msg, time.Duration) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	resp, rtt, err := c.Exchange(m, addr.String())
	if err != nil {
		t.Fatalf("query %v: %v", m.Question, err)
	}
	return resp, rtt
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}
