package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	socks5 "github.com/things-go/go-socks5"
	"github.com/things-go/go-socks5/statute"
	"golang.org/x/net/dns/dnsmessage"
)

// socks5UDP sends one datagram to dst ("ip:port") through the SOCKS5
// proxy at proxy (no authentication) by UDP ASSOCIATE (RFC 1928 §7), and
// returns the payload of the first datagram the proxy relays back and
// the address it says the datagram came from.
//
// No maintained Go library has a SOCKS5 UDP client today:
// golang.org/x/net/proxy does CONNECT only, go-socks5's own client
// (ccsocks5) is gone from v0.0.6, and the others are unmaintained. So
// this is the smallest client, built on go-socks5's statute package (the
// wire format the server under test parses): the method negotiation,
// the ASSOCIATE request naming the UDP socket it sends from, and
// datagrams with the RFC's header, to the relay address the reply names.
// The association lives as long as its TCP connection.
func socks5UDP(ctx context.Context, proxy, dst string, payload []byte) (data []byte, from string, err error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	if _, err := c.Write(statute.NewMethodRequest(statute.VersionSocks5, []byte{statute.MethodNoAuth}).Bytes()); err != nil {
		return nil, "", err
	}
	m, err := statute.ParseMethodReply(c)
	if err != nil {
		return nil, "", fmt.Errorf("method reply: %w", err)
	}
	if m.Method != statute.MethodNoAuth {
		return nil, "", fmt.Errorf("the proxy chose method %#x, want no authentication", m.Method)
	}
	// The datagrams come from a UDP socket on the proxy's side of
	// loopback, named in the request.
	host, _, err := net.SplitHostPort(proxy)
	if err != nil {
		return nil, "", err
	}
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		return nil, "", err
	}
	defer u.Close()
	local := u.LocalAddr().(*net.UDPAddr)
	req := statute.Request{Version: statute.VersionSocks5, Command: statute.CommandAssociate,
		DstAddr: statute.AddrSpec{IP: local.IP, Port: local.Port, AddrType: addrType(local.IP)}}
	if _, err := c.Write(req.Bytes()); err != nil {
		return nil, "", err
	}
	rep, err := statute.ParseReply(c)
	if err != nil {
		return nil, "", fmt.Errorf("associate reply: %w", err)
	}
	if rep.Response != statute.RepSuccess {
		return nil, "", fmt.Errorf("the proxy refused UDP ASSOCIATE: reply %d", rep.Response)
	}
	relay := &net.UDPAddr{IP: rep.BndAddr.IP, Port: rep.BndAddr.Port}
	if relay.IP == nil || relay.IP.IsUnspecified() {
		relay.IP = net.ParseIP(host) // RFC 1928: the server's address
	}
	dg, err := statute.NewDatagram(dst, payload)
	if err != nil {
		return nil, "", err
	}
	if deadline, ok := ctx.Deadline(); ok {
		u.SetDeadline(deadline)
	}
	if _, err := u.WriteToUDP(dg.Bytes(), relay); err != nil {
		return nil, "", err
	}
	buf := make([]byte, 64<<10)
	for {
		n, src, err := u.ReadFromUDP(buf)
		if err != nil {
			return nil, "", fmt.Errorf("waiting for an answer relayed from %s: %w", relay, err)
		}
		if !src.IP.Equal(relay.IP) || src.Port != relay.Port {
			continue // RFC 1928: only the relay's datagrams count
		}
		got, err := statute.ParseDatagram(buf[:n])
		if err != nil {
			return nil, "", fmt.Errorf("relayed datagram: %w", err)
		}
		return got.Data, got.DstAddr.String(), nil
	}
}

func addrType(ip net.IP) byte {
	if ip.To4() != nil {
		return statute.ATYPIPv4
	}
	return statute.ATYPIPv6
}

// dnsQueryA is a DNS query for name's A records, ID id.
func dnsQueryA(name string, id uint16) ([]byte, error) {
	n, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, err
	}
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	return m.Pack()
}

// dnsAnswerA returns the A records of a DNS answer to query ID id.
func dnsAnswerA(b []byte, id uint16) ([]netip.Addr, error) {
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("parsing the DNS answer: %w", err)
	}
	if !m.Response || m.ID != id {
		return nil, fmt.Errorf("not the answer to query %d: %+v", id, m.Header)
	}
	if m.RCode != dnsmessage.RCodeSuccess {
		return nil, fmt.Errorf("DNS answer %v", m.RCode)
	}
	var addrs []netip.Addr
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			addrs = append(addrs, netip.AddrFrom4(r.A))
		}
	}
	return addrs, nil
}

// socks5DNS asks the DNS server at server ("ip:53") for name's A records
// through the SOCKS5 proxy's UDP ASSOCIATE, and checks that the answer
// came from server.
func socks5DNS(ctx context.Context, proxy, server, name string) ([]netip.Addr, error) {
	const id = 0x5157
	q, err := dnsQueryA(name, id)
	if err != nil {
		return nil, err
	}
	b, from, err := socks5UDP(ctx, proxy, server, q)
	if err != nil {
		return nil, err
	}
	if from != server {
		return nil, fmt.Errorf("the answer came from %s, not %s", from, server)
	}
	return dnsAnswerA(b, id)
}

// Environment of the socks5dns helper.
const (
	envSOCKS5    = "WARREN_E2E_SOCKS5"     // the proxy's address
	envDNSServer = "WARREN_E2E_DNS_SERVER" // the DNS server, ip:port
	envDNSName   = "WARREN_E2E_DNS_NAME"   // the name to ask for
)

// TestHelperSOCKS5DNS is TestUserspaceClient's DNS client in the laptop's
// namespace: it prints the A records of $WARREN_E2E_DNS_NAME, asked of
// $WARREN_E2E_DNS_SERVER through the SOCKS5 proxy's UDP ASSOCIATE.
func TestHelperSOCKS5DNS(t *testing.T) {
	helper(t, "socks5dns")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := socks5DNS(ctx, os.Getenv(envSOCKS5), os.Getenv(envDNSServer), os.Getenv(envDNSName))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
}

// TestSOCKS5UDPClient checks socks5UDP against go-socks5's own server on
// loopback, relaying to a UDP echo server, and that it reports a proxy
// that refuses UDP. It needs no root.
func TestSOCKS5UDPClient(t *testing.T) {
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			echo.WriteToUDP(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	serve := func(opts ...socks5.Option) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		srv := socks5.NewServer(opts...)
		go srv.Serve(ln)
		return ln.Addr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	proxy := serve()
	got, from, err := socks5UDP(ctx, proxy, echo.LocalAddr().String(), []byte("ping"))
	if err != nil {
		t.Fatalf("through go-socks5: %v", err)
	}
	if want := "echo:ping"; !bytes.Equal(got, []byte(want)) || from != echo.LocalAddr().String() {
		t.Errorf("got %q from %s, want %q from %s", got, from, want, echo.LocalAddr())
	}

	// A proxy that allows CONNECT only answers ASSOCIATE with "not
	// allowed by ruleset".
	connectOnly := serve(socks5.WithRule(&socks5.PermitCommand{EnableConnect: true}))
	_, _, err = socks5UDP(ctx, connectOnly, echo.LocalAddr().String(), []byte("ping"))
	if err == nil || !strings.Contains(err.Error(), "refused UDP ASSOCIATE") {
		t.Errorf("through a proxy refusing UDP: %v, want a refusal", err)
	}
}

// TestDNSMessages round-trips dnsQueryA and dnsAnswerA.
func TestDNSMessages(t *testing.T) {
	q, err := dnsQueryA("lanhost.corp", 7)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	m.Response = true
	m.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET},
		Body: &dnsmessage.AResource{A: [4]byte{192, 168, 0, 10}}}}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	got, err := dnsAnswerA(b, 7)
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("192.168.0.10") {
		t.Errorf("dnsAnswerA: %v, %v; want [192.168.0.10]", got, err)
	}
	if _, err := dnsAnswerA(b, 8); err == nil {
		t.Error("an answer to another query ID: no error")
	}
	if _, err := dnsAnswerA([]byte("junk"), 7); err == nil {
		t.Error("junk: no error")
	}
}
