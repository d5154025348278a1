package dnsres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Dialer opens connections to the pushed domains' servers (the tunnel).
type Dialer interface {
	// DialContext dials network ("udp" or "tcp") at address ("IP:53").
	// The connection must honour deadlines; the resolver closes it. A UDP
	// connection carries one DNS message per Read and Write.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options configures a Resolver.
type Options struct {
	// Dialer reaches the pushed domains' servers. Nil: those queries fail
	// (SERVFAIL).
	Dialer Dialer
	// System reaches the fallback resolvers. Nil: a net.Dialer (the
	// normal network).
	System Dialer
	// Logger gets forwarding failures at debug level. Nil: discarded.
	Logger *slog.Logger
	// Timeout bounds one query's forwarding in total, across every server
	// and the TCP retry. Zero: DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is a query's forwarding budget when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// hostTTL is the TTL of the resolver's own answers.
const hostTTL = 60

// Resolver answers and forwards DNS queries by the Config last Set. It is
// a dns.Handler; safe for concurrent use.
type Resolver struct {
	dialer  Dialer
	system  Dialer
	log     *slog.Logger
	timeout time.Duration
	cfg     atomic.Pointer[snapshot] // never nil after New; readers never lock
}

// New returns a Resolver with the zero Config.
func New(opts Options) *Resolver {
	r := &Resolver{dialer: opts.Dialer, system: opts.System, log: opts.Logger, timeout: opts.Timeout}
	if r.system == nil {
		r.system = &net.Dialer{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	s, _ := build(Config{})
	r.cfg.Store(s)
	return r
}

// Set validates cfg and makes it current for the queries that start after
// it returns (a query in flight finishes with the snapshot it started
// with). An invalid cfg changes nothing.
func (r *Resolver) Set(cfg Config) error {
	s, err := build(cfg)
	if err != nil {
		return err
	}
	r.cfg.Store(s)
	return nil
}

// Route tells where name would go under the current Config. It does no I/O.
func (r *Resolver) Route(name string) Decision {
	return r.cfg.Load().route(name)
}

// ServeDNS answers one query: itself, or by forwarding it.
func (r *Resolver) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := r.resolve(context.Background(), req)
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		r.log.Debug("dns: writing answer", "err", err)
	}
}

// resolve returns the answer to req, with req's ID and question.
func (r *Resolver) resolve(ctx context.Context, req *dns.Msg) *dns.Msg {
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		return reply(req, dns.RcodeNotImplemented)
	}
	s := r.cfg.Load()
	q := req.Question[0]
	d := s.route(q.Name)
	switch d.Action {
	case Answer:
		return s.answer(req, d)
	case NotFound:
		return reply(req, dns.RcodeNameError)
	case Forward:
		return r.forward(ctx, r.dialer, req, d.Servers)
	case Fallback:
		return r.forward(ctx, r.system, req, d.Servers)
	}
	return reply(req, dns.RcodeFormatError)
}

// reply is an empty answer to req with rcode.
func reply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	if o := req.IsEdns0(); o != nil {
		m.SetEdns0(dns.DefaultMsgSize, o.Do())
	}
	return m
}

// answer answers a host name (A, AAAA; NODATA for other types) or a host
// address's reverse name (PTR).
func (s *snapshot) answer(req *dns.Msg, d Decision) *dns.Msg {
	m := reply(req, dns.RcodeSuccess)
	m.Authoritative = true
	q := req.Question[0]
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: hostTTL}
	}
	if h, ok := s.hosts[d.Name]; ok {
		switch q.Qtype {
		case dns.TypeA, dns.TypeANY:
			for _, a := range h.a {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			}
		}
		switch q.Qtype {
		case dns.TypeAAAA, dns.TypeANY:
			for _, a := range h.aaaa {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
		return m
	}
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
		for _, target := range s.ptr[d.Name] {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: target})
		}
	}
	return m
}

// errBadAnswer: an answer that is not to our question.
var errBadAnswer = errors.New("answer does not match the query")

// forward sends req to each server in turn until one answers (an answer
// other than SERVFAIL or REFUSED), within the resolver's timeout in total;
// each server gets an equal share of what is left. No answer: SERVFAIL.
func (r *Resolver) forward(ctx context.Context, dialer Dialer, req *dns.Msg, servers []netip.AddrPort) *dns.Msg {
	if dialer == nil || len(servers) == 0 {
		return reply(req, dns.RcodeServerFailure)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var last *dns.Msg
	for i, srv := range servers {
		deadline, _ := ctx.Deadline()
		share := time.Until(deadline) / time.Duration(len(servers)-i)
		if share <= 0 {
			break
		}
		actx, acancel := context.WithTimeout(ctx, share)
		resp, err := exchange(actx, dialer, req, srv)
		acancel()
		if err != nil {
			r.log.Debug("dns: forwarding", "server", srv, "name", req.Question[0].Name, "err", err)
			continue
		}
		if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
			last = resp
			continue
		}
		return resp
	}
	if last != nil {
		return last
	}
	return reply(req, dns.RcodeServerFailure)
}

// exchange asks srv over UDP, and again over TCP when the answer is
// truncated. The answer carries req's ID and question.
func exchange(ctx context.Context, dialer Dialer, req *dns.Msg, srv netip.AddrPort) (*dns.Msg, error) {
	out := req.Copy()
	out.Id = dns.Id()
	resp, err := exchangeOn(ctx, dialer, "udp", out, srv)
	if err == nil && resp.Truncated {
		resp, err = exchangeOn(ctx, dialer, "tcp", out, srv)
	}
	if err != nil {
		return nil, err
	}
	resp.Id = req.Id
	resp.Question = req.Question // the case as the client asked (0x20)
	return resp, nil
}

func exchangeOn(ctx context.Context, dialer Dialer, network string, out *dns.Msg, srv netip.AddrPort) (*dns.Msg, error) {
	wire, err := out.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	conn, err := dialer.DialContext(ctx, network, srv.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s %v: %w", network, srv, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	for {
		var buf []byte
		if network == "tcp" {
			buf, err = roundTripTCP(conn, wire)
		} else {
			buf, err = roundTripUDP(conn, wire)
		}
		if err != nil {
			return nil, fmt.Errorf("asking %s %v: %w", network, srv, err)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(buf); err != nil {
			return nil, fmt.Errorf("reading answer from %s %v: %w", network, srv, err)
		}
		if resp.Id != out.Id || !sameQuestion(resp, out) {
			if network == "udp" {
				wire = nil // a stray datagram: keep reading
				continue
			}
			return nil, fmt.Errorf("answer from %s %v: %w", network, srv, errBadAnswer)
		}
		return resp, nil
	}
}

func sameQuestion(resp, out *dns.Msg) bool {
	if len(resp.Question) != len(out.Question) {
		return false
	}
	for i, q := range resp.Question {
		o := out.Question[i]
		if q.Qtype != o.Qtype || q.Qclass != o.Qclass || asciiLower(q.Name) != asciiLower(o.Name) {
			return false
		}
	}
	return true
}

// roundTripUDP writes wire (unless nil) and reads one datagram.
func roundTripUDP(conn net.Conn, wire []byte) ([]byte, error) {
	if wire != nil {
		if _, err := conn.Write(wire); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, dns.MaxMsgSize)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// roundTripTCP writes wire with its length prefix and reads one message.
func roundTripTCP(conn net.Conn, wire []byte) ([]byte, error) {
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
