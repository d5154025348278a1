package proxy

import (
	"bytes"
	stdcmp "cmp"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/things-go/go-socks5/statute"
	txsocks5 "github.com/txthinking/socks5"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/warrennet/warren/internal/testutil"
)

// udpEcho runs a UDP echo server on loopback until the test ends and returns its address.
func udpEcho(t *testing.T) string {
	t.Helper()
	return udpServer(t, func(q []byte) []byte { return q })
}

// udpServer answers each datagram with answer(datagram), if not nil, until the test ends.
func udpServer(t *testing.T, answer func([]byte) []byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if a := answer(buf[:n]); a != nil {
				pc.WriteTo(a, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// dnsServer answers every A question with 192.0.2.7, on loopback, until the test ends.
func dnsServer(t *testing.T) string {
	t.Helper()
	return udpServer(t, func(q []byte) []byte {
		var m dnsmessage.Message
		if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
			return nil
		}
		m.Header.Response, m.Header.Authoritative = true, true
		m.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: [4]byte{192, 0, 2, 7}},
		}}
		a, err := m.Pack()
		if err != nil {
			return nil
		}
		return a
	})
}

// udpClient is a UDP association opened by txthinking/socks5's client.
type udpClient struct {
	c    *txsocks5.Client
	ctrl net.Conn // the TCP control connection
	udp  net.Conn // the client's UDP socket, connected to the relay
}

// newUDPClient opens an association through the SOCKS5 proxy at addr whose client's datagrams
// go to dst ("" = a placeholder; exchange and sendTo name their own).
func newUDPClient(t *testing.T, addr, user, pass string) *udpClient {
	t.Helper()
	cl, err := txsocks5.NewClient(addr, user, pass, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cl.Dial("udp", "127.0.0.1:9")
	if err != nil {
		t.Fatalf("UDP ASSOCIATE: %v", err)
	}
	c := conn.(*txsocks5.Client)
	t.Cleanup(func() { c.Close() })
	return &udpClient{c: c, ctrl: c.TCPConn, udp: c.UDPConn}
}

// sendTo sends payload to dst through the association, framed with go-socks5's statute.
func (u *udpClient) sendTo(t *testing.T, dst string, payload []byte) {
	t.Helper()
	d, err := statute.NewDatagram(dst, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.udp.Write(d.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// receive reads one datagram from the relay and parses it with txthinking's parser: the
// address it names and its data.
func (u *udpClient) receive(t *testing.T) (string, []byte) {
	t.Helper()
	buf := make([]byte, 64<<10)
	u.udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := u.udp.Read(buf)
	if err != nil {
		t.Fatalf("reading the relay: %v", err)
	}
	d, err := txsocks5.NewDatagramFromBytes(buf[:n])
	if err != nil {
		t.Fatalf("answer from the relay: %v", err)
	}
	return d.Address(), d.Data
}

// exchange sends payload to dst and checks the answer comes from dst with the same payload (an
// echo) and returns it.
func (u *udpClient) exchange(t *testing.T, dst string, payload []byte) {
	t.Helper()
	u.sendTo(t, dst, payload)
	from, got := u.receive(t)
	if from != dst || !bytes.Equal(got, payload) {
		t.Fatalf("answer from %s: %q, want %q from %s", from, got, payload, dst)
	}
}

// TestUDPAssociateDNS asks a loopback DNS server through the association by name, as a client
// does with a SOCKS5 domain address: the Dialer gets the name, the answer names it too.
func TestUDPAssociateDNS(t *testing.T) {
	dns := dnsServer(t)
	port := portOf(t, dns)
	tests := []struct {
		name       string
		listen     string // the proxy's; "" = 127.0.0.1:0
		user, pass string
		dst        string // the address the client sends to
	}{
		{name: "by name", dst: "ns.corp.test:" + port},
		{name: "by address", dst: dns},
		{name: "with credentials", user: "alice", pass: "s3cret", dst: "ns.corp.test:" + port},
		{name: "over IPv6 loopback", listen: "[::1]:0", dst: "ns.corp.test:" + port},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			listen := stdcmp.Or(tt.listen, "127.0.0.1:0")
			if ln, err := net.Listen("tcp", listen); err != nil {
				t.Skipf("cannot listen on %s: %v", listen, err)
			} else {
				ln.Close()
			}
			d := &fakeDialer{names: map[string]string{"ns.corp.test": "127.0.0.1"}}
			s := start(t, Config{SOCKS5: listen, Username: tt.user, Password: tt.pass, Dialer: d})
			cl, err := txsocks5.NewClient(s.socks5, tt.user, tt.pass, 0, 5)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := cl.Dial("udp", tt.dst)
			if err != nil {
				t.Fatalf("UDP ASSOCIATE: %v", err)
			}
			defer conn.Close()
			q := dnsmessage.Message{
				Header:    dnsmessage.Header{ID: 4242, RecursionDesired: true},
				Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("intranet.corp.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
			}
			packed, err := q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(packed); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			var a dnsmessage.Message
			if err := a.Unpack(buf[:n]); err != nil {
				t.Fatalf("answer: %v", err)
			}
			if a.ID != 4242 || len(a.Answers) != 1 || a.Answers[0].Body.(*dnsmessage.AResource).A != [4]byte{192, 0, 2, 7} {
				t.Errorf("answer = %+v, want 192.0.2.7 for ID 4242", a)
			}
			if diff := cmp.Diff([]dialCall{{"udp", tt.dst}}, d.Calls()); diff != "" {
				t.Errorf("dialer calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUDPAssociate checks an association's life: answers name their source as the client did,
// one Dialer conn per destination, the limit on destinations, strangers' datagrams ignored,
// destinations closed when idle and everything closed with the control connection.
func TestUDPAssociate(t *testing.T) {
	echo1, echo2 := udpEcho(t), udpEcho(t)
	d := &fakeDialer{names: map[string]string{"echo.corp.test": "127.0.0.1"}}
	s := start(t, Config{SOCKS5: "127.0.0.1:0", Dialer: d}, func(l *limits) {
		l.maxDestinations = 3
		l.udpIdle = 2 * time.Second // long enough for the subtests before the idle one, on a loaded machine
	})
	u := newUDPClient(t, s.socks5, "", "")
	byName := "echo.corp.test:" + portOf(t, echo2)

	for i := range 3 {
		u.exchange(t, echo1, []byte("one "+strconv.Itoa(i)))
		u.exchange(t, byName, []byte("two "+strconv.Itoa(i)))
	}
	want := []dialCall{{"udp", echo1}, {"udp", byName}}
	if diff := cmp.Diff(want, d.Calls()); diff != "" {
		t.Fatalf("dialer calls (-want +got):\n%s", diff)
	}

	t.Run("destination limit", func(t *testing.T) {
		third, fourth := udpEcho(t), udpEcho(t)
		u.exchange(t, third, []byte("three"))
		u.sendTo(t, fourth, []byte("four")) // over the limit of 3: dropped
		u.exchange(t, echo1, []byte("still"))
		want = append(want, dialCall{"udp", third})
		if diff := cmp.Diff(want, d.Calls()); diff != "" {
			t.Errorf("dialer calls (-want +got):\n%s", diff)
		}
	})

	t.Run("datagrams from another socket are ignored", func(t *testing.T) {
		relay := u.udp.RemoteAddr().String()
		stranger, err := net.Dial("udp", relay)
		if err != nil {
			t.Fatal(err)
		}
		defer stranger.Close()
		dg, _ := statute.NewDatagram(echo1, []byte("intruder"))
		stranger.Write(dg.Bytes())
		stranger.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := stranger.Read(make([]byte, 100)); err == nil {
			t.Errorf("a stranger got %d bytes back from the relay", n)
		}
		u.exchange(t, echo1, []byte("mine")) // the client's own still work
	})

	t.Run("idle destinations close", func(t *testing.T) {
		conns := d.Conns()
		testutil.WaitFor(t, "every destination to idle out", func() bool {
			for _, c := range conns {
				if !c.closed.Load() {
					return false
				}
			}
			return true
		})
		// The next datagram dials again.
		u.exchange(t, echo1, []byte("again"))
		if got := d.Calls(); got[len(got)-1] != (dialCall{"udp", echo1}) {
			t.Errorf("last dial = %v, want %v again", got[len(got)-1], echo1)
		}
	})

	t.Run("closing the control connection ends the association", func(t *testing.T) {
		conns := d.Conns()
		u.ctrl.Close()
		testutil.WaitFor(t, "the destinations to close", func() bool {
			return conns[len(conns)-1].closed.Load()
		})
		u.sendTo(t, echo1, []byte("too late"))
		u.udp.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := u.udp.Read(make([]byte, 100)); err == nil {
			t.Errorf("the relay answered %d bytes after its association ended", n)
		}
	})
}

// TestUDPAssociateDialFailure checks that a destination whose dial fails drops its datagrams,
// dials again only after redialAfter, and leaves the other destinations working.
func TestUDPAssociateDialFailure(t *testing.T) {
	echo := udpEcho(t)
	d := &fakeDialer{fail: map[string]error{"gone.corp.test:53": &net.DNSError{Err: "no such host", Name: "gone.corp.test", IsNotFound: true}}}
	s := start(t, Config{SOCKS5: "127.0.0.1:0", Dialer: d}, func(l *limits) { l.redialAfter = time.Hour })
	u := newUDPClient(t, s.socks5, "", "")
	for range 5 {
		u.sendTo(t, "gone.corp.test:53", []byte("query"))
	}
	u.exchange(t, echo, []byte("fine"))
	got := 0
	for _, c := range d.Calls() {
		if c.Address == "gone.corp.test:53" {
			got++
		}
	}
	if got != 1 {
		t.Errorf("%d dials of the failing destination, want 1 within redialAfter", got)
	}
}

// FuzzParseDatagram feeds the relay's parser arbitrary client datagrams: it never panics, and
// what it accepts is a well-formed unfragmented datagram whose re-encoding parses to the same
// destination and data.
func FuzzParseDatagram(f *testing.F) {
	for _, dst := range []string{"127.0.0.1:53", "[2001:db8::1]:443", "ns.corp.test:53", "a:1"} {
		d, err := statute.NewDatagram(dst, []byte("payload"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(d.Bytes())
	}
	f.Add([]byte{0, 0, 1, 1, 127, 0, 0, 1, 0, 53, 'x'})     // a fragment
	f.Add([]byte{0, 0, 0, 3, 255, 'a'})                     // a name longer than the datagram
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // a short IPv6 address
	f.Add([]byte{0, 0, 0, 1, 10, 0, 0, 1, 0, 0})            // port 0
	f.Add([]byte{0, 0, 0, 3, 3, 'a', '%', 'b', 0, 53, 1})   // not a host name
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDatagram(b)
		if err != nil {
			return
		}
		if d.Frag != 0 || d.DstAddr.Port == 0 {
			t.Fatalf("accepted %+v", d)
		}
		dst := d.DstAddr.String()
		if _, err := netip.ParseAddrPort(dst); err != nil && !validHost(d.DstAddr.FQDN) {
			t.Fatalf("accepted destination %q", dst)
		}
		again, err := parseDatagram(append(d.Header(), d.Data...))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", dst, err)
		}
		if got := again.DstAddr.String(); got != dst || !bytes.Equal(again.Data, d.Data) {
			t.Fatalf("round trip: %s %q, want %s %q", got, again.Data, dst, d.Data)
		}
		if got, want := len(d.Header()), len(b)-len(d.Data); got != want {
			t.Fatalf("re-encoded header of %d bytes, parsed from one of %d", got, want)
		}
	})
}
