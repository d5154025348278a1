package proxy

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dialer opens connections for the proxy. address is "host:port"; host may be a name, which the
// Dialer resolves (the tunnel's names first). network is "tcp" or "udp".
//
// The proxy maps a dial's error to its answer with errors.Is: syscall.ECONNREFUSED → SOCKS5
// "connection refused", ENETUNREACH → "network unreachable", fs.ErrPermission (EACCES, EPERM) →
// "not allowed by ruleset" and HTTP 403, a timeout → HTTP 504, anything else → SOCKS5 "host
// unreachable" and HTTP 502. A "udp" conn must be connected: Write sends one datagram to
// address, Read returns one from it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config is what New needs.
type Config struct {
	// SOCKS5 and HTTP are the listen addresses ("127.0.0.1:1080"); "" = that proxy is off. Port 0
	// picks a free port (Server.Addrs tells which).
	SOCKS5, HTTP string
	// Username and Password, when set (both), are required from every client: SOCKS5
	// username/password (RFC 1929), HTTP Proxy-Authorization Basic.
	Username, Password string
	Dialer             Dialer
	Logger             *slog.Logger // nil: discard
}

// Limits.
const (
	// handshakeTimeout bounds a SOCKS5 client's greeting, authentication and request, and an HTTP
	// client's request headers.
	handshakeTimeout = 10 * time.Second
	// dialTimeout bounds one dial through the Dialer.
	dialTimeout = 30 * time.Second
	// maxHeaderBytes bounds an HTTP request's headers.
	maxHeaderBytes = 64 << 10
	// httpIdleTimeout closes an HTTP client connection idle between requests.
	httpIdleTimeout = 2 * time.Minute
	// maxCredential is RFC 1929's limit on a username and a password.
	maxCredential = 255
)

// limits are the bounds a Server applies: the constants, which tests shrink.
type limits struct {
	handshake       time.Duration // handshakeTimeout
	udpIdle         time.Duration // udpIdle
	maxDestinations int           // maxDestinations
	redialAfter     time.Duration // redialAfter
}

// Validate checks c. Listen addresses must be IP literals (or localhost) with a port; one that is
// not loopback is allowed only with a username and password.
func (c Config) Validate() error {
	if c.SOCKS5 == "" && c.HTTP == "" {
		return errors.New("proxy: neither a SOCKS5 nor an HTTP listen address is set")
	}
	if c.Dialer == nil {
		return errors.New("proxy: no dialer")
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("proxy: a username needs a password and a password a username")
	}
	if len(c.Username) > maxCredential || len(c.Password) > maxCredential {
		return fmt.Errorf("proxy: the username and the password may have at most %d bytes each", maxCredential)
	}
	if strings.Contains(c.Username, ":") {
		return errors.New("proxy: the username may not contain ':' (HTTP Basic auth separates it from the password with one)")
	}
	auth := c.Username != ""
	for _, l := range []struct{ name, addr string }{{"socks5", c.SOCKS5}, {"http proxy", c.HTTP}} {
		if l.addr == "" {
			continue
		}
		loopback, err := isLoopback(l.addr)
		if err != nil {
			return fmt.Errorf("proxy: %s listen address %q: %w", l.name, l.addr, err)
		}
		if !loopback && !auth {
			return fmt.Errorf("proxy: %s listen address %s is not loopback: set a username and password to listen on it", l.name, l.addr)
		}
	}
	if c.SOCKS5 != "" && c.SOCKS5 == c.HTTP && !strings.HasSuffix(c.SOCKS5, ":0") {
		return fmt.Errorf("proxy: socks5 and http proxy both listen on %s", c.SOCKS5)
	}
	return nil
}

// isLoopback reports whether the listen address addr ("host:port") is on a loopback address.
func isLoopback(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, errors.New("want host:port")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(p, 10) != port {
		return false, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "localhost" {
		return true, nil
	}
	if host == "" {
		return false, nil // every address
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return false, fmt.Errorf("host %q is not an IP address", host)
	}
	return ip.Unmap().IsLoopback(), nil
}

// Server is the SOCKS5 and HTTP proxies of one Config.
type Server struct {
	cfg Config
	log *slog.Logger
	lim limits

	mu           sync.Mutex // guards started, socks5, http
	started      bool
	socks5, http net.Addr // listening addresses, once Run listens
}

// New checks cfg and returns a Server; Run serves it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, lim: limits{handshakeTimeout, udpIdle, maxDestinations, redialAfter}}, nil
}

// Addrs returns the addresses the proxies listen on, nil for one that is off or before Run has
// started listening.
func (s *Server) Addrs() (socks5, http net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.socks5, s.http
}

// Run listens on the configured addresses and serves until ctx ends; then it closes the
// listeners and every client's connection, the flows and UDP associations with them, and returns
// nil once every goroutine it started has returned. It returns an error, after closing
// everything, when it cannot listen or a listener fails. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("proxy: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	var socksLn, httpLn net.Listener
	var err error
	if s.cfg.SOCKS5 != "" {
		if socksLn, err = net.Listen("tcp", s.cfg.SOCKS5); err != nil {
			return fmt.Errorf("proxy: socks5: %w", err)
		}
	}
	if s.cfg.HTTP != "" {
		if httpLn, err = net.Listen("tcp", s.cfg.HTTP); err != nil {
			if socksLn != nil {
				socksLn.Close()
			}
			return fmt.Errorf("proxy: http proxy: %w", err)
		}
	}

	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &running{ctx: ctx, dialer: s.cfg.Dialer, log: s.log, lim: s.lim, user: s.cfg.Username, pass: s.cfg.Password}

	var wg sync.WaitGroup // the serve loops
	s.mu.Lock()
	if socksLn != nil {
		s.socks5 = socksLn.Addr()
		s.log.Info("socks5 proxy listening", "addr", s.socks5)
		wg.Go(func() { cancel(r.serveSOCKS5(socksLn)) })
	}
	if httpLn != nil {
		s.http = httpLn.Addr()
		s.log.Info("http proxy listening", "addr", s.http)
		wg.Go(func() { cancel(r.serveHTTP(httpLn)) })
	}
	s.mu.Unlock()

	<-ctx.Done()
	// Shutdown: each serve loop closes its listener, closes its clients' connections and waits
	// for the goroutines serving them (flows and associations also watch ctx).
	if socksLn != nil {
		socksLn.Close()
	}
	wg.Wait()
	if parent.Err() != nil {
		return nil
	}
	return context.Cause(ctx) // a serve loop's failure
}

// running is one Run's state, shared by the handlers of both proxies.
type running struct {
	ctx        context.Context // ends when Run stops
	dialer     Dialer
	log        *slog.Logger
	lim        limits
	user, pass string // "" = no authentication
	socks5     flows  // the SOCKS5 clients' goroutines and connections
	errs       errLogs
}

// dial opens a connection through the Dialer, within dialTimeout and Run's life.
func (r *running) dial(ctx context.Context, network, address string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return r.dialer.DialContext(ctx, network, address)
}

// validCredentials reports whether user and pass are the configured ones, in time independent of
// where they differ.
func (r *running) validCredentials(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(r.user))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(r.pass))
	return u&p == 1
}

// flows tracks the goroutines that serve clients and the client connections they hold, so that
// Run can close every connection and wait for every goroutine.
type flows struct {
	mu      sync.Mutex // guards closing and conns
	closing bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// start registers a goroutine about to serve c (c may be nil), and reports false, registering
// nothing, once closeAll has been called.
func (f *flows) start(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	if c != nil {
		if f.conns == nil {
			f.conns = map[net.Conn]struct{}{}
		}
		f.conns[c] = struct{}{}
	}
	f.wg.Add(1)
	return true
}

// done unregisters a goroutine start registered, and c with it.
func (f *flows) done(c net.Conn) {
	if c != nil {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}
	f.wg.Done()
}

// closeAll refuses new flows from now on and closes every registered connection.
func (f *flows) closeAll() {
	f.mu.Lock()
	f.closing = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// wait returns once every registered goroutine is done. Call it after closeAll.
func (f *flows) wait() { f.wg.Wait() }
