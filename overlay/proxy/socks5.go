package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	socks5 "github.com/things-go/go-socks5"
	"github.com/things-go/go-socks5/statute"

	"github.com/warrennet/warren/netstack"
)

// serveSOCKS5 accepts SOCKS5 clients on ln, each served in a goroutine of its own registered in
// r.socks5, until ln is closed; then it closes every client's connection and returns nil once
// their goroutines have returned.
func (r *running) serveSOCKS5(ln net.Listener) error {
	defer r.socks5.wait()
	defer r.socks5.closeAll()
	opts := []socks5.Option{
		socks5.WithResolver(keepNames{}),
		socks5.WithConnectHandle(r.socksConnect),
		socks5.WithAssociateHandle(r.socksAssociate),
		// BIND stays the library's: it answers "command not supported".
	}
	if r.user != "" {
		opts = append(opts, socks5.WithCredential(credentials{r}))
	}
	srv := socks5.NewServer(opts...)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if r.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.errs.handshake.warn(r.log, "socks5: accepting", "err", err, "retry_in", backoff)
			if sleep(r.ctx, backoff); r.ctx.Err() != nil {
				return nil
			}
			continue
		}
		backoff = 0
		if !r.socks5.start(c) {
			c.Close()
			return nil
		}
		go r.serveSOCKS5Conn(srv, c)
	}
}

// serveSOCKS5Conn serves one SOCKS5 client: the library reads the greeting, the authentication
// and the request within handshakeTimeout, then calls socksConnect or socksAssociate.
func (r *running) serveSOCKS5Conn(srv *socks5.Server, c net.Conn) {
	defer r.socks5.done(c)
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.lim.handshake))
	err := srv.ServeConn(c)
	switch {
	case err == nil, r.ctx.Err() != nil:
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r.log.Debug("socks5: client left during the handshake", "src", c.RemoteAddr(), "err", err)
	default:
		r.errs.handshake.warn(r.log, "socks5: handshake", "src", c.RemoteAddr(), "err", err)
	}
}

// socksConnect is the CONNECT handler: it dials the destination through the Dialer, answers
// with the outcome, and copies both ways until both are done. w is the client's conn.
func (r *running) socksConnect(_ context.Context, w io.Writer, req *socks5.Request) error {
	client, ok := w.(net.Conn)
	if !ok {
		return fmt.Errorf("socks5 connect: the library passed a %T, not the client's conn", w)
	}
	dst := req.DestAddr.String()
	start := time.Now()
	target, err := r.dial(r.ctx, "tcp", dst)
	if err != nil {
		r.errs.dial.warn(r.log, "socks5 connect: dial failed", "src", client.RemoteAddr(), "dst", dst, "err", err)
		return sendReply(w, replyFor(err), nil)
	}
	if err := sendReply(w, statute.RepSuccess, target.LocalAddr()); err != nil {
		target.Close()
		return err
	}
	client.SetDeadline(time.Time{})
	r.log.Debug("socks5 connect", "src", client.RemoteAddr(), "dst", dst)
	n, err := netstack.ProxyCount(r.ctx, withBuffered(client, req.Reader), target)
	r.log.Debug("socks5 connect closed", "src", client.RemoteAddr(), "dst", dst,
		"sent", n.AToB, "received", n.BToA, "duration", time.Since(start).Round(time.Millisecond), "err", err)
	return nil
}

// replyFor maps a Dialer's error to the SOCKS5 reply for it.
func replyFor(err error) uint8 {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return statute.RepConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return statute.RepNetworkUnreachable
	case errors.Is(err, fs.ErrPermission):
		return statute.RepRuleFailure
	default: // EHOSTUNREACH, a name that does not resolve, a timeout, anything else
		return statute.RepHostUnreachable
	}
}

// isTimeout reports whether err is a dial's time-out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ETIMEDOUT) || (errors.As(err, &ne) && ne.Timeout())
}

// sendReply writes a SOCKS5 reply with rep and the bound address, 0.0.0.0:0 when bound is not
// an IP address (the library's SendReply answers "address type not supported" for a success
// whose address is not a *net.TCPAddr or *net.UDPAddr, which a Dialer's conn need not be).
func sendReply(w io.Writer, rep uint8, bound net.Addr) error {
	rsp := statute.Reply{
		Version:  statute.VersionSocks5,
		Response: rep,
		BndAddr:  statute.AddrSpec{AddrType: statute.ATYPIPv4, IP: net.IPv4zero},
	}
	if ap := addrPort(bound); ap.IsValid() {
		ip := ap.Addr().Unmap()
		rsp.BndAddr.IP, rsp.BndAddr.Port = ip.AsSlice(), int(ap.Port())
		if ip.Is6() {
			rsp.BndAddr.AddrType = statute.ATYPIPv6
		}
	}
	_, err := w.Write(rsp.Bytes())
	return err
}

// addrPort returns a's IP address and port, the zero AddrPort when it has none.
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// keepNames is the SOCKS5 server's resolver: it resolves nothing, so that a domain address
// reaches the Dialer as the name (the library dials DestAddr.String(), which is the name when no
// IP is set). It refuses a name that could not be a host name (the client gets "host
// unreachable").
type keepNames struct{}

func (keepNames) Resolve(ctx context.Context, name string) (context.Context, net.IP, error) {
	if !validHost(name) {
		return ctx, nil, fmt.Errorf("%q is not a host name", name)
	}
	return ctx, nil, nil
}

// validHost reports whether name, a SOCKS5 domain address, could be a host: an IP address
// without a zone, or 1 to 253 bytes of letters, digits, '-', '_' and '.'.
func validHost(name string) bool {
	if ip, err := netip.ParseAddr(name); err == nil {
		return ip.Zone() == ""
	}
	if name == "" || len(name) > 253 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// credentials checks SOCKS5 username/password against the configured ones.
type credentials struct{ r *running }

func (c credentials) Valid(user, password, _ string) bool {
	return c.r.validCredentials(user, password)
}

// withBuffered returns the client's conn c reading first what rd, the library's bufio.Reader
// over c, has buffered past the request (a client may send before it has the reply). A conn with
// nothing buffered is returned as it is, so that netstack.ProxyCount sees the *net.TCPConn.
func withBuffered(c net.Conn, rd io.Reader) net.Conn {
	br, ok := rd.(*bufio.Reader)
	if !ok || br.Buffered() == 0 {
		return c
	}
	early, _ := br.Peek(br.Buffered())
	return &prefixConn{Conn: c, prefix: append([]byte(nil), early...)}
}

// prefixConn is a client's conn that reads prefix first. It keeps the TCP conn's half-close and
// reset, which netstack.ProxyCount uses.
type prefixConn struct {
	net.Conn
	prefix []byte // read by one goroutine only, the copy from the client
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func (p *prefixConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return p.Conn.Close()
}

func (p *prefixConn) SetLinger(sec int) error {
	if l, ok := p.Conn.(interface{ SetLinger(int) error }); ok {
		return l.SetLinger(sec)
	}
	return nil
}
