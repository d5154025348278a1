package dnsres

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/warrennet/warren/internal/testutil"
)

type world struct {
	r       *Resolver
	addr    netip.AddrPort // the resolver, served on loopback
	site    *upstream      // 10.0.0.1 through the tunnel
	trunc   *upstream      // 10.0.0.2: truncates every UDP answer
	spoof   *upstream      // 10.0.0.5: sends wrong answers before the right one
	system  *upstream      // the fallback
	tunnel  *tunnel
	cfg     Config
	timeout time.Duration
}

func newWorld(t *testing.T) *world {
	t.Helper()
	// Registered first, so it runs last: after the servers have stopped.
	t.Cleanup(func() { testutil.NoLeaks(t, "overlay/dnsres.") })
	w := &world{
		site:    &upstream{},
		trunc:   &upstream{truncate: true},
		spoof:   &upstream{spoof: true},
		system:  &upstream{a: netip.MustParseAddr("203.0.113.7")},
		timeout: 2 * time.Second,
	}
	w.tunnel = &tunnel{to: map[netip.Addr]netip.AddrPort{
		netip.MustParseAddr("10.0.0.1"): serve(t, w.site),
		netip.MustParseAddr("10.0.0.2"): serve(t, w.trunc),
		netip.MustParseAddr("10.0.0.3"): blackhole(t),
		netip.MustParseAddr("10.0.0.4"): down(t),
		netip.MustParseAddr("10.0.0.5"): serve(t, w.spoof),
	}}
	ip := netip.MustParseAddr
	w.cfg = Config{
		Hosts: []Host{
			{Name: "production-server", Addrs: []netip.Addr{ip("192.168.0.10")}},
			{Name: "db", Addrs: []netip.Addr{ip("192.168.0.20"), ip("fd00::20")}},
			{Name: "v6only", Addrs: []netip.Addr{ip("fd00::30")}},
		},
		HostSuffix: "warren.internal",
		Domains: []Domain{
			{Suffix: "corp.example", Servers: []netip.Addr{ip("10.0.0.1")}},
			{Suffix: "big.corp.example", Servers: []netip.Addr{ip("10.0.0.2")}},
			{Suffix: "dead.example", Servers: []netip.Addr{ip("10.0.0.3")}},
			{Suffix: "flaky.example", Servers: []netip.Addr{ip("10.0.0.4"), ip("10.0.0.1")}},
			{Suffix: "slow.example", Servers: []netip.Addr{ip("10.0.0.3"), ip("10.0.0.1")}},
			{Suffix: "spoof.example", Servers: []netip.Addr{ip("10.0.0.5")}},
		},
		Fallback: []netip.AddrPort{serve(t, w.system)},
	}
	w.r = New(Options{Dialer: w.tunnel, Timeout: w.timeout})
	if err := w.r.Set(w.cfg); err != nil {
		t.Fatal(err)
	}
	w.addr = serve(t, w.r)
	return w
}

func rrText(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}

func TestResolve(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		network string // "udp" unless set
		rcode   int
		answer  []string
	}{
		{"host bare", "production-server.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"production-server. 60 IN A 192.168.0.10"}},
		{"host with suffix, case kept", "Production-Server.WARREN.internal.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"Production-Server.WARREN.internal. 60 IN A 192.168.0.10"}},
		{"host aaaa", "db.warren.internal.", dns.TypeAAAA, "", dns.RcodeSuccess,
			[]string{"db.warren.internal. 60 IN AAAA fd00::20"}},
		{"host a of a dual host", "db.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"db. 60 IN A 192.168.0.20"}},
		{"host a, ipv6 only: nodata", "v6only.warren.internal.", dns.TypeA, "", dns.RcodeSuccess, nil},
		{"host mx: nodata", "db.warren.internal.", dns.TypeMX, "", dns.RcodeSuccess, nil},
		{"unknown under suffix", "nope.warren.internal.", dns.TypeA, "", dns.RcodeNameError, nil},
		{"the suffix itself", "warren.internal.", dns.TypeA, "", dns.RcodeNameError, nil},
		{"ptr v4", "10.0.168.192.in-addr.arpa.", dns.TypePTR, "", dns.RcodeSuccess,
			[]string{"10.0.168.192.in-addr.arpa. 60 IN PTR production-server.warren.internal."}},
		{"ptr v6", mustReverse(t, "fd00::20"), dns.TypePTR, "", dns.RcodeSuccess,
			[]string{mustReverse(t, "fd00::20") + " 60 IN PTR db.warren.internal."}},
		{"pushed domain", "lanhost.corp.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"lanhost.corp.example. 1234 IN A 192.168.0.10"}},
		{"pushed domain, case kept", "LanHost.Corp.EXAMPLE.", dns.TypeAAAA, "", dns.RcodeSuccess,
			[]string{"LanHost.Corp.EXAMPLE. 1234 IN AAAA fd00::10"}},
		{"pushed domain apex", "corp.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"corp.example. 1234 IN A 192.168.0.10"}},
		{"pushed domain nxdomain passed through", "nx.corp.example.", dns.TypeA, "", dns.RcodeNameError, nil},
		{"not on a label boundary: fallback", "xcorp.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"xcorp.example. 1234 IN A 203.0.113.7"}},
		{"truncated over udp: retried over tcp", "x.big.corp.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"x.big.corp.example. 1234 IN A 192.168.0.10"}},
		{"first server down: next one", "a.flaky.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"a.flaky.example. 1234 IN A 192.168.0.10"}},
		{"first server silent: next one in time", "a.slow.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"a.slow.example. 1234 IN A 192.168.0.10"}},
		{"answers to another id or question ignored", "a.spoof.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"a.spoof.example. 1234 IN A 192.168.0.10"}},
		{"everything else: fallback", "public.example.", dns.TypeA, "", dns.RcodeSuccess,
			[]string{"public.example. 1234 IN A 203.0.113.7"}},
		{"over tcp", "db.", dns.TypeAAAA, "tcp", dns.RcodeSuccess,
			[]string{"db. 60 IN AAAA fd00::20"}},
		{"site server silent: servfail", "a.dead.example.", dns.TypeA, "", dns.RcodeServerFailure, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network := tt.network
			if network == "" {
				network = "udp"
			}
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, tt.qtype)
			m.Id = 0x4242
			resp, _ := query(t, network, w.addr, m)
			if got, want := resp.Id, m.Id; got != want {
				t.Errorf("id = %#x, want %#x", got, want)
			}
			if got, want := resp.Rcode, tt.rcode; got != want {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[got], dns.RcodeToString[want])
			}
			if diff := cmp.Diff(tt.answer, rrText(resp.Answer)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if len(resp.Question) != 1 || resp.Question[0].Name != tt.qname {
				t.Errorf("question = %v, want %s as asked", resp.Question, tt.qname)
			}
		})
	}
	if w.trunc.udp.Load() == 0 || w.trunc.tcp.Load() == 0 {
		t.Errorf("truncating server saw %d udp and %d tcp queries, want both", w.trunc.udp.Load(), w.trunc.tcp.Load())
	}
	if w.tunnel.dials.Load() == 0 {
		t.Errorf("no query went through the tunnel")
	}
}

func mustReverse(t *testing.T, a string) string {
	t.Helper()
	r, err := dns.ReverseAddr(a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEDNSPassedThrough(t *testing.T) {
	w := newWorld(t)
	m := new(dns.Msg)
	m.SetQuestion("lanhost.corp.example.", dns.TypeA)
	m.SetEdns0(4000, true)
	resp, _ := query(t, "udp", w.addr, m)
	if got, want := w.site.lastEDNS.Load(), int64(4000); got != want {
		t.Errorf("site saw EDNS0 size %d, want %d", got, want)
	}
	if resp.IsEdns0() == nil {
		t.Errorf("answer has no OPT record")
	}
	// And the resolver's own answers keep EDNS0 too.
	m.SetQuestion("db.", dns.TypeA)
	resp, _ = query(t, "udp", w.addr, m)
	if resp.IsEdns0() == nil {
		t.Errorf("own answer has no OPT record")
	}
}

// A site server that never answers makes a SERVFAIL within the bound, not
// after a resolver library's 30 s.
func TestServfailBounded(t *testing.T) {
	w := newWorld(t)
	for _, name := range []string{"a.dead.example.", "b.dead.example."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		start := time.Now()
		resp, _ := query(t, "udp", w.addr, m)
		took := time.Since(start)
		if got, want := resp.Rcode, dns.RcodeServerFailure; got != want {
			t.Errorf("%s: rcode = %s, want %s", name, dns.RcodeToString[got], dns.RcodeToString[want])
		}
		if took > 3*time.Second {
			t.Errorf("%s: SERVFAIL took %v, want under 3s (timeout %v)", name, took, w.timeout)
		}
	}
}

func TestNoFallbackOrDialer(t *testing.T) {
	r := New(Options{Timeout: 200 * time.Millisecond})
	if err := r.Set(Config{Domains: []Domain{{Suffix: "corp.example", Servers: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}}}); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	for _, name := range []string{"a.corp.example.", "public.example."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		resp, _ := query(t, "udp", addr, m)
		if got, want := resp.Rcode, dns.RcodeServerFailure; got != want {
			t.Errorf("%s: rcode = %s, want %s", name, dns.RcodeToString[got], dns.RcodeToString[want])
		}
	}
}

// Set during queries: every answer comes whole from one snapshot or the
// other (run with -race).
func TestConcurrentSet(t *testing.T) {
	w := newWorld(t)
	other := w.cfg
	other.Hosts = []Host{{Name: "production-server", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.99")}}}
	valid := map[string]bool{
		"production-server. 60 IN A 192.168.0.10": true,
		"production-server. 60 IN A 192.168.0.99": true,
	}
	stop := make(chan struct{})
	var setter sync.WaitGroup
	setter.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cfg := w.cfg
			if i%2 == 1 {
				cfg = other
			}
			if err := w.r.Set(cfg); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var queriers sync.WaitGroup
	for range 4 {
		queriers.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			for range 50 {
				m := new(dns.Msg)
				m.SetQuestion("production-server.", dns.TypeA)
				resp, _, err := c.Exchange(m, w.addr.String())
				if err != nil {
					t.Error(err)
					return
				}
				got := rrText(resp.Answer)
				if len(got) != 1 || !valid[got[0]] {
					t.Errorf("answer = %v, want one of %v", got, valid)
				}
				_ = w.r.Route("lanhost.corp.example")
			}
		})
	}
	queriers.Wait()
	close(stop)
	setter.Wait()
}

// An answer too big for the client's UDP buffer goes back truncated, so
// the client retries over TCP and gets it whole.
func TestTruncatesOwnAnswer(t *testing.T) {
	var addrs []netip.Addr
	for i := range 40 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}))
	}
	r := New(Options{})
	if err := r.Set(Config{Hosts: []Host{{Name: "many", Addrs: addrs}}}); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	m := new(dns.Msg)
	m.SetQuestion("many.", dns.TypeA)
	resp, _ := query(t, "udp", addr, m)
	if !resp.Truncated {
		t.Errorf("udp answer of %d records not truncated", len(resp.Answer))
	}
	resp.Compress = true // as it went on the wire
	if n, _ := resp.Pack(); len(n) > dns.MinMsgSize {
		t.Errorf("udp answer is %d bytes, want at most %d", len(n), dns.MinMsgSize)
	}
	resp, _ = query(t, "tcp", addr, m)
	if resp.Truncated || len(resp.Answer) != len(addrs) {
		t.Errorf("tcp answer: truncated %v with %d records, want %d whole", resp.Truncated, len(resp.Answer), len(addrs))
	}
}
