package connector

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The LAN side of TCP flows, dialed from a port the connector picks.
//
// A connector whose clients close first ends each LAN connection in
// TIME-WAIT on its side, which holds the connection's local port for a
// minute, and all the connections it forwards to one LAN service draw on
// the same port range. Linux hands connect() a port by scanning that range
// (half of it first) for one not in use toward the destination: in the
// demo lab, after 14,000 short connections to one LAN port (14,500
// sockets in TIME-WAIT), a connect through the connector took 7.6 ms at
// p50 instead of 0.66, and a few hundred connections a second sustained
// would leave no port at all. The kernel's remedy, the tcp_tw_reuse
// sysctl, is not the connector's to set: it runs as an ordinary user.
//
// A socket bound to its port before connect() may take over a TIME-WAIT
// connection to the same destination if both ends used TCP timestamps, as
// Linux hosts do by default (the check is PAWS's, so a stray segment of
// the old connection cannot land in the new one). Binding a port that a
// TIME-WAIT socket holds requires SO_REUSEADDR on both, so every LAN
// socket of the connector sets it. A port in use otherwise (an open
// connection to the same destination, a listener) fails the bind or the
// connect at once, and the next attempt takes another random port; after
// a few, the kernel chooses as before.

// lanDialAttempts is how many random ports a dial tries before it lets
// the kernel choose.
const lanDialAttempts = 6

// lanDialer dials the LAN hosts of TCP flows from random ports of the
// ephemeral range, and everything else as a net.Dialer would.
type lanDialer struct {
	d      net.Dialer // SO_REUSEADDR on every socket
	lo, hi int        // the ephemeral port range, inclusive
}

func newLANDialer(timeout time.Duration) *lanDialer {
	lo, hi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if l, h, ok := parsePortRange(string(b)); ok {
			lo, hi = l, h
		}
	}
	return &lanDialer{
		d:  net.Dialer{Timeout: timeout, Control: reuseAddr},
		lo: lo, hi: hi,
	}
}

// parsePortRange parses ip_local_port_range: two port numbers; ports
// below 1024 are left out (an ordinary user cannot bind them).
func parsePortRange(s string) (lo, hi int, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	lo = max(lo, 1024)
	if err1 != nil || err2 != nil || hi > 65535 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

// DialContext dials addr; TCP from a random port first (see above).
func (l *lanDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" {
		var d net.Dialer
		d.Timeout = l.d.Timeout
		return d.DialContext(ctx, network, addr)
	}
	for range lanDialAttempts {
		c, err := l.dialFrom(ctx, addr, l.lo+rand.IntN(l.hi-l.lo+1))
		if err == nil || !portTaken(err) {
			return c, err
		}
	}
	return l.d.DialContext(ctx, network, addr)
}

// dialFrom dials addr over TCP from local port port.
func (l *lanDialer) dialFrom(ctx context.Context, addr string, port int) (net.Conn, error) {
	d := l.d
	d.LocalAddr = &net.TCPAddr{Port: port}
	return d.DialContext(ctx, "tcp", addr)
}

// portTaken reports whether err says the local port was not free for
// this connection.
func portTaken(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
