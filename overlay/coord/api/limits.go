package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Limits bound what a peer of the API can hold or spend without a
// credential. A request is authenticated when it carries a valid admin
// token or node credential; enrolling (a token is not a credential yet),
// health checks and failed authentication are not.
type Limits struct {
	// HeaderTimeout bounds the TLS handshake and reading a request's
	// header (http.Server.ReadHeaderTimeout).
	HeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, header and body, from
	// its start (http.Server.ReadTimeout; per stream on HTTP/2). An
	// authenticated request's body gets AuthReadTimeout from the moment
	// it is authenticated instead, and an authenticated control stream no
	// limit at all (its heartbeats time it out).
	ReadTimeout     time.Duration
	AuthReadTimeout time.Duration
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// UnauthConnsPerSource and UnauthConns cap the connections that have
	// not yet carried an authenticated request, from one source (an IPv4
	// address or an IPv6 /64) and in all. A connection past either is
	// closed as soon as it is accepted. Connections that authenticated
	// count against neither, so an office of nodes behind one address is
	// limited only while its connections are new.
	UnauthConnsPerSource int
	UnauthConns          int
	// UnauthRate (requests per second) and UnauthBurst are a token bucket
	// per source for requests that are not authenticated; past it they
	// are answered 429 with Retry-After. UnauthSources bounds the number
	// of sources tracked at once; when it is full, new sources are
	// answered 429 until old ones have refilled.
	UnauthRate    float64
	UnauthBurst   int
	UnauthSources int
	// H2MaxConcurrentStreams bounds the requests in flight on one HTTP/2
	// connection.
	H2MaxConcurrentStreams int
}

// DefaultLimits are the coordinator's limits: generous enough for an
// office of laptops behind one NAT address enrolling at once, tight
// enough that one address cannot hold many connections or file
// descriptors without a credential.
func DefaultLimits() Limits {
	return Limits{
		HeaderTimeout:          10 * time.Second,
		ReadTimeout:            30 * time.Second,
		AuthReadTimeout:        5 * time.Minute,
		MaxHeaderBytes:         64 << 10,
		UnauthConnsPerSource:   256,
		UnauthConns:            8192,
		UnauthRate:             20,
		UnauthBurst:            200,
		UnauthSources:          1 << 16,
		H2MaxConcurrentStreams: 100,
	}
}

// Validate reports a limit that is not positive.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"header timeout", l.HeaderTimeout > 0},
		{"read timeout", l.ReadTimeout > 0},
		{"authenticated read timeout", l.AuthReadTimeout > 0},
		{"max header bytes", l.MaxHeaderBytes > 0},
		{"unauthenticated connections per source", l.UnauthConnsPerSource > 0},
		{"unauthenticated connections", l.UnauthConns >= l.UnauthConnsPerSource},
		{"unauthenticated request rate", l.UnauthRate > 0},
		{"unauthenticated request burst", l.UnauthBurst >= 1},
		{"unauthenticated sources", l.UnauthSources > 0},
		{"HTTP/2 concurrent streams", l.H2MaxConcurrentStreams > 0},
	} {
		if !f.ok {
			return fmt.Errorf("api limits: %s out of range", f.name)
		}
	}
	return nil
}

// Configure makes srv serve s within l: it sets srv's handler, time-outs,
// header and HTTP/2 limits, and returns ln wrapped so that it caps
// unauthenticated connections. Serve srv on the returned listener. Call
// it once, before serving.
func (s *Server) Configure(srv *http.Server, ln net.Listener, l Limits) (net.Listener, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	g := &guard{
		limits: l,
		conns:  newConnGate(l.UnauthConnsPerSource, l.UnauthConns),
		rate:   newRateLimiter(l.UnauthRate, l.UnauthBurst, l.UnauthSources),
		now:    time.Now,
	}
	s.guard = g
	srv.Handler = s
	srv.ReadHeaderTimeout = l.HeaderTimeout
	srv.ReadTimeout = l.ReadTimeout
	srv.MaxHeaderBytes = l.MaxHeaderBytes
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: l.H2MaxConcurrentStreams}
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		if gc := gatedConnOf(c); gc != nil {
			ctx = context.WithValue(ctx, gatedConnKey{}, gc)
		}
		return ctx
	}
	return &gatedListener{Listener: ln, gate: g.conns, log: s.log}, nil
}

// guard enforces Limits on each request.
type guard struct {
	limits Limits
	conns  *connGate
	rate   *rateLimiter
	now    func() time.Time
}

// admit lets an authenticated request through (freeing its connection
// from the unauthenticated caps and giving its body AuthReadTimeout), and
// charges any other to its source's budget. It answers 429 and returns
// false once that budget is spent.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	g := s.guard
	if g == nil {
		return true
	}
	if s.authenticated(r) {
		if gc, ok := r.Context().Value(gatedConnKey{}).(*gatedConn); ok {
			gc.authenticated()
		}
		if r.URL.Path != wire.PathStream { // the stream lifts its own
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(g.now().Add(g.limits.AuthReadTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
				s.log.Debug("extending read deadline", "err", err)
			}
		}
		return true
	}
	ok, wait := g.rate.allow(sourceOf(r.RemoteAddr), g.now())
	if ok {
		return true
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	s.reply(w, http.StatusTooManyRequests, &wire.Error{Code: wire.CodeRateLimited,
		Message: fmt.Sprintf("too many requests without a credential from this address; retry in %d s", max(secs, 1))})
	return false
}

// authenticated tells whether r carries a valid admin token or node
// credential.
func (s *Server) authenticated(r *http.Request) bool {
	b := bearer(r)
	if b == "" {
		return false
	}
	if s.c.AuthenticateAdmin(b) == nil {
		return true
	}
	_, err := s.c.AuthenticateNode(b)
	return err == nil
}
