package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/warrennet/warren/netstack"
)

// Limits of the forwarding HTTP client.
const (
	maxIdleConns           = 64
	maxIdleConnsPerHost    = 16
	idleConnTimeout        = 90 * time.Second
	maxResponseHeaderBytes = 1 << 20
)

// httpProxy is the HTTP proxy's handler: CONNECT tunnels, and requests with an absolute http://
// URI forwarded by a ReverseProxy whose Transport dials through the Dialer. A forwarded request
// leaves in origin form, so one sent back to the proxy is refused (400) rather than looping.
type httpProxy struct {
	r     *running
	rp    *httputil.ReverseProxy
	flows flows // the handlers running
}

// serveHTTP serves the HTTP proxy on ln until Run stops (nil) or ln fails (the error); it returns
// once every handler has.
func (r *running) serveHTTP(ln net.Listener) error {
	h := &httpProxy{r: r}
	tr := &http.Transport{
		Proxy:                  nil, // never another proxy from the environment
		DialContext:            r.dial,
		DisableCompression:     true, // the client's Accept-Encoding goes through as it is
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	h.rp = &httputil.ReverseProxy{
		// Rewrite (rather than Director) leaves out X-Forwarded-For and friends: the destination
		// learns nothing of the laptop. The hop-by-hop headers, Proxy-Authorization among them,
		// are removed by ReverseProxy both ways.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.Header.Add("Via", "1.1 warren") // RFC 9110 §7.6.3
		},
		Transport:      tr,
		ErrorHandler:   h.fail,
		ModifyResponse: h.logResponse,
		ErrorLog:       slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	// The server's connection goroutines: each conn is new once, then closed or hijacked once
	// (a hijacked one's goroutine runs on as its handler, which h.flows counts). StateNew is
	// reported by Serve itself, so none is added once Serve has returned.
	var conns sync.WaitGroup
	srv := &http.Server{
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				conns.Done()
			}
		},
		Handler:           h,
		ReadHeaderTimeout: r.lim.handshake,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return r.ctx },
	}
	// Close, not Shutdown: a client's requests end with Run (their contexts with them), and the
	// CONNECT tunnels, which the server no longer knows once hijacked, end on r.ctx.
	stop := context.AfterFunc(r.ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(ln)
	srv.Close()
	h.flows.closeAll()
	h.flows.wait()
	conns.Wait()
	tr.CloseIdleConnections()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("proxy: http proxy: %w", err)
}

func (h *httpProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !h.flows.start(nil) {
		http.Error(w, "warren http proxy: stopping", http.StatusServiceUnavailable)
		return
	}
	defer h.flows.done(nil)
	if h.r.user != "" && !h.authorized(req) {
		h.r.errs.handshake.warn(h.r.log, "http proxy: authentication failed", "src", req.RemoteAddr)
		w.Header().Set("Proxy-Authenticate", `Basic realm="warren"`)
		http.Error(w, "warren http proxy: authentication required", http.StatusProxyAuthRequired)
		return
	}
	if req.Method == http.MethodConnect {
		h.connect(w, req)
		return
	}
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		http.Error(w, "warren http proxy: send a request with an absolute http:// URI, or CONNECT", http.StatusBadRequest)
		return
	}
	h.rp.ServeHTTP(w, req)
}

// authorized reports whether req carries the configured username and password as
// Proxy-Authorization Basic.
func (h *httpProxy) authorized(req *http.Request) bool {
	// net/http parses Basic credentials from Authorization only: lend it the header.
	asAuth := &http.Request{Header: http.Header{"Authorization": req.Header.Values("Proxy-Authorization")}}
	user, pass, ok := asAuth.BasicAuth()
	return ok && h.r.validCredentials(user, pass)
}

// connect serves a CONNECT: it dials the destination through the Dialer, answers 200 (or the
// dial's error), and copies both ways on the hijacked connection until both are done.
func (h *httpProxy) connect(w http.ResponseWriter, req *http.Request) {
	dst := req.Host
	if host, port, err := net.SplitHostPort(dst); err != nil || port == "" || !validHost(host) {
		http.Error(w, "warren http proxy: CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	start := time.Now()
	target, err := h.r.dial(req.Context(), "tcp", dst)
	if err != nil {
		h.r.errs.dial.warn(h.r.log, "http proxy connect: dial failed", "src", req.RemoteAddr, "dst", dst, "err", err)
		http.Error(w, "warren http proxy: "+err.Error(), statusFor(err))
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		h.r.errs.http.warn(h.r.log, "http proxy connect: hijacking the connection", "src", req.RemoteAddr, "err", err)
		return
	}
	client.SetDeadline(time.Time{})
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		target.Close()
		return
	}
	h.r.log.Debug("http proxy connect", "src", req.RemoteAddr, "dst", dst)
	n, err := netstack.ProxyCount(h.r.ctx, withBuffered(client, brw.Reader), target)
	h.r.log.Debug("http proxy connect closed", "src", req.RemoteAddr, "dst", dst,
		"sent", n.AToB, "received", n.BToA, "duration", time.Since(start).Round(time.Millisecond), "err", err)
}

// statusFor maps a Dialer's or the forwarding's error to the HTTP status for it.
func statusFor(err error) int {
	switch {
	case isTimeout(err):
		return http.StatusGatewayTimeout
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	default:
		return http.StatusBadGateway
	}
}

// fail is the ReverseProxy's error handler.
func (h *httpProxy) fail(w http.ResponseWriter, req *http.Request, err error) {
	if req.Context().Err() != nil {
		h.r.log.Debug("http proxy request ended early", "src", req.RemoteAddr, "dst", req.URL.Host, "err", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	h.r.errs.http.warn(h.r.log, "http proxy request failed", "src", req.RemoteAddr, "method", req.Method, "dst", req.URL.Host, "err", err)
	http.Error(w, "warren http proxy: "+err.Error(), statusFor(err))
}

// logResponse logs a forwarded request's outcome.
func (h *httpProxy) logResponse(resp *http.Response) error {
	if req := resp.Request; req != nil {
		h.r.log.Debug("http proxy request", "method", req.Method, "dst", req.URL.Host, "status", resp.StatusCode)
	}
	return nil
}
