package api

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// sourceOf is the source a limit charges for a remote address: the IPv4
// address, or the IPv6 /64 (one subscriber's network).
func sourceOf(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.WithZone("").Prefix(64)
	return p
}

// connGate counts the connections that have not yet carried an
// authenticated request, per source and in all.
type connGate struct {
	perSource, total int

	// mu guards bySource and n.
	mu       sync.Mutex
	bySource map[netip.Prefix]int
	n        int
}

func newConnGate(perSource, total int) *connGate {
	return &connGate{perSource: perSource, total: total, bySource: make(map[netip.Prefix]int)}
}

// enter counts a new connection from src, or refuses it past a cap.
func (g *connGate) enter(src netip.Prefix) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n >= g.total || g.bySource[src] >= g.perSource {
		return false
	}
	g.n++
	g.bySource[src]++
	return true
}

// leave uncounts a connection from src.
func (g *connGate) leave(src netip.Prefix) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.bySource[src]--; g.bySource[src] <= 0 {
		delete(g.bySource, src)
	}
}

// gatedListener closes, as soon as it accepts them, connections past the
// gate's caps.
type gatedListener struct {
	net.Listener
	gate *connGate
	log  *slog.Logger

	refused    atomic.Int64
	lastLogged atomic.Int64 // unix nanoseconds
}

func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr().String())
		if l.gate.enter(src) {
			return &gatedConn{Conn: c, gate: l.gate, src: src}, nil
		}
		c.Close()
		l.refused.Add(1)
		if now := time.Now().UnixNano(); now-l.lastLogged.Load() > int64(10*time.Second) {
			l.lastLogged.Store(now)
			l.log.Warn("refusing connections: too many without a credential", "source", src, "refused", l.refused.Swap(0))
		}
	}
}

// gatedConn is a connection counted by a gate until it carries an
// authenticated request or closes.
type gatedConn struct {
	net.Conn
	gate *connGate
	src  netip.Prefix
	once sync.Once
}

// authenticated stops counting the connection.
func (c *gatedConn) authenticated() {
	c.once.Do(func() { c.gate.leave(c.src) })
}

func (c *gatedConn) Close() error {
	c.authenticated()
	return c.Conn.Close()
}

type gatedConnKey struct{}

// gatedConnOf finds the gatedConn under c (a *tls.Conn, say).
func gatedConnOf(c net.Conn) *gatedConn {
	for c != nil {
		if gc, ok := c.(*gatedConn); ok {
			return gc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}
