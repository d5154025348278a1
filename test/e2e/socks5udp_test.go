package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	socks5 "github.com/things-go/go-socks5"
	txsocks5 "github.com/txthinking/socks5"
	"golang.org/x/net/dns/dnsmessage"
)

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

// socks5DNS asks the DNS server at server ("ip:port") for name's A
// records through the SOCKS5 proxy at proxy (no authentication), over a
// UDP association (RFC 1928 §7) opened by txthinking/socks5's client:
// golang.org/x/net/proxy has CONNECT only. The client sends each write
// as one datagram with the RFC's header to the relay address the
// proxy's reply names, and strips the header from what the relay sends
// back.
func socks5DNS(ctx context.Context, proxy, server, name string) ([]netip.Addr, error) {
	const id = 0x5157
	q, err := dnsQueryA(name, id)
	if err != nil {
		return nil, err
	}
	cl, err := txsocks5.NewClient(proxy, "", "", 5, 5)
	if err != nil {
		return nil, err
	}
	c, err := cl.Dial("udp", server)
	if err != nil {
		return nil, fmt.Errorf("UDP ASSOCIATE: %w", err)
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("waiting for the answer: %w", err)
	}
	return dnsAnswerA(buf[:n], id)
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

// TestSOCKS5DNS asks a loopback DNS server through go-socks5's own
// server with socks5DNS. It needs no root.
func TestSOCKS5DNS(t *testing.T) {
	dns, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := dns.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			m.Response = true
			m.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: m.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET},
				Body: &dnsmessage.AResource{A: [4]byte{192, 0, 2, 7}}}}
			if b, err := m.Pack(); err == nil {
				dns.WriteToUDP(b, from)
			}
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go socks5.NewServer().Serve(ln)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := socks5DNS(ctx, ln.Addr().String(), dns.LocalAddr().String(), "lanhost.corp")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("socks5DNS: %v, %v; want [192.0.2.7]", got, err)
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
