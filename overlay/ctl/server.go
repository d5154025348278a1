package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Backend is what the daemon offers its socket. The server authorises
// every call before the Backend sees it (see Server).
type Backend interface {
	// Status reports the daemon's state now.
	Status(ctx context.Context) Status
	// Up brings the tunnel up, enrolling first if needed (with a token,
	// or by a login at req.Coordinator), and returns once traffic can
	// flow or with the reason it cannot. It calls progress for each
	// step, from its own goroutine.
	Up(ctx context.Context, req UpRequest, progress func(Progress)) error
	// Login logs this node out if it is enrolled, then enrolls it by a
	// login and brings the tunnel up, as Up does.
	Login(ctx context.Context, req UpRequest, progress func(Progress)) error
	// Logout takes the tunnel down, asks the coordinator to remove this
	// node (best effort) and forgets the identity.
	Logout(ctx context.Context) (LogoutResult, error)
	// Down removes the tunnel and everything installed for it. The node
	// stays enrolled.
	Down(ctx context.Context) error
	// Why explains what happens to traffic for q.IP and, if q names a
	// flow, what the access policy decides about it.
	Why(ctx context.Context, q WhyQuery) (Why, error)
	// Prefs returns the settings. The server reads the operator from it
	// for every call, so it must be cheap and must not block.
	Prefs(ctx context.Context) Prefs
	// EditPrefs changes the settings edit names, keeps the others, and
	// applies the result to the running tunnel.
	EditPrefs(ctx context.Context, edit PrefsEdit) (Prefs, error)
	// SSHCert gets a certificate on req.PublicKey for the local user c,
	// writes it for them and keeps it renewed.
	SSHCert(ctx context.Context, c Caller, req SSHCertRequest) (SSHCertResult, error)
	// DialContext opens a connection to address ("host:port"; host may be a
	// name) over network as the laptop reaches it through Warren: through
	// the tunnel when the tunnel carries it, else directly.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Server serves a Backend on a unix socket that every local user may
// connect to. It authorises each request by the caller's uid, which the
// kernel reports (SO_PEERCRED): root and the daemon's own user may make
// every call; the operator (Prefs.Operator) may read the status, why and
// the settings, and get SSH certificates for themselves; anyone else is
// refused with 403 and one line.
type Server struct {
	b    Backend
	log  *slog.Logger
	euid uint32 // the daemon's effective uid, allowed everything
	// cookie is the same-user proof callers send where the kernel cannot
	// say who they are (cookie.go); "" where it can.
	cookie string

	// dials are the connections the dial endpoint carries, which the
	// http.Server stops tracking once they are switched: Serve ends
	// them and waits for them. dialMu guards shut, set by Serve before
	// it waits, after which no dial is added.
	dials  sync.WaitGroup
	dialMu sync.Mutex
	shut   bool
}

// NewServer returns a server for b.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{b: b, log: log, euid: uint32(os.Geteuid())}
}

// Listen creates the socket at path, mode 0666 (the server authorises
// each request), replacing a stale one left by a crash but refusing to
// take over a live daemon's.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another warren daemon is listening on %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	// Every local user may connect; Server decides per request.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("opening %s to local users: %w", path, err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx ends. Where the kernel reports
// no peer credentials, it keeps a cookie beside the socket meanwhile
// (cookie.go).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !peerCredSupported {
		cookie, remove, err := writeCookie(ln)
		if err != nil {
			return err
		}
		defer remove()
		s.cookie = cookie
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStatus, s.guard(accessOperator, "read the status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.b.Status(r.Context()))
	}))
	mux.HandleFunc("POST "+pathDown, s.guard(accessRoot, "take the tunnel down", func(w http.ResponseWriter, r *http.Request) {
		if err := s.b.Down(r.Context()); err != nil {
			writeJSON(w, http.StatusInternalServerError, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, Progress{Done: true, Message: "down"})
	}))
	mux.HandleFunc("POST "+pathUp, s.guard(accessRoot, "bring the tunnel up", s.stream(s.b.Up)))
	mux.HandleFunc("POST "+pathLogin, s.guard(accessRoot, "log this machine in", s.stream(s.b.Login)))
	mux.HandleFunc("POST "+pathLogout, s.guard(accessRoot, "log this machine out", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.b.Logout(r.Context())
		if err != nil {
			writeJSON(w, http.StatusConflict, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc("GET "+pathPrefs, s.guard(accessOperator, "read the settings", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.b.Prefs(r.Context()))
	}))
	mux.HandleFunc("POST "+pathPrefs, s.guard(accessRoot, "change the settings", func(w http.ResponseWriter, r *http.Request) {
		var edit PrefsEdit
		if !decode(w, r, &edit) {
			return
		}
		p, err := s.b.EditPrefs(r.Context(), edit)
		if err != nil {
			writeJSON(w, http.StatusConflict, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, p)
	}))
	mux.HandleFunc("GET "+pathWhy, s.guard(accessOperator, "ask why", func(w http.ResponseWriter, r *http.Request) {
		q, err := parseWhyQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Progress{Done: true, Error: err.Error()})
			return
		}
		why, err := s.b.Why(r.Context(), q)
		if err != nil {
			writeJSON(w, http.StatusConflict, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, why)
	}))
	mux.HandleFunc("POST "+pathSSHCert, s.guard(accessOperator, "get ssh certificates", func(w http.ResponseWriter, r *http.Request) {
		var req SSHCertRequest
		if !decode(w, r, &req) {
			return
		}
		c, _ := CallerFrom(r.Context())
		res, err := s.b.SSHCert(r.Context(), c, req)
		if err != nil {
			writeJSON(w, http.StatusConflict, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}))
	mux.HandleFunc("POST "+pathDial, s.guard(accessOperator, "open connections through the daemon", s.serveDial))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Every local user may connect: none may hold a connection long
		// without a request, or a request body forever. (Up's progress
		// is the response, which no read time-out bounds.)
		ReadTimeout: 30 * time.Second,
		IdleTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: connContext,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(ln)
	<-done
	s.dialMu.Lock()
	s.shut = true
	s.dialMu.Unlock()
	s.dials.Wait() // ctx has ended: spliceAll closes its conns
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// decode reads a JSON body of at most 64 KiB into v, strictly, or answers
// 400 and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, Progress{Done: true, Error: "bad request: " + err.Error()})
		return false
	}
	return true
}

// stream runs an up-like call, streaming its progress as newline-delimited
// JSON and ending with Done.
func (s *Server) stream(call func(context.Context, UpRequest, func(Progress)) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req UpRequest
		if !decode(w, r, &req) {
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		msgs := make(chan Progress, 16)
		result := make(chan error, 1)
		go func() {
			defer close(msgs)
			result <- call(r.Context(), req, func(p Progress) {
				p.Done, p.Error = false, ""
				select {
				case msgs <- p:
				case <-r.Context().Done():
				}
			})
		}()
		for m := range msgs {
			_ = enc.Encode(m)
			_ = rc.Flush()
		}
		final := Progress{Done: true, Message: "up"}
		if err := <-result; err != nil {
			final = Progress{Done: true, Error: err.Error()}
		}
		_ = enc.Encode(final)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxHostLen bounds a host name in a why query (DNS's limit).
const maxHostLen = 253

// parseWhyQuery reads ?ip=IP or ?host=NAME, then [&port=PORT][&proto=PROTO].
func parseWhyQuery(v url.Values) (WhyQuery, error) {
	var q WhyQuery
	if h := v.Get("host"); h != "" && v.Get("ip") == "" {
		if len(h) > maxHostLen {
			return q, fmt.Errorf("host name %.40q… is too long", h)
		}
		q.Host = h
	} else if ip, err := netip.ParseAddr(v.Get("ip")); err != nil || ip.Zone() != "" {
		return q, fmt.Errorf("%q is not an IP address", v.Get("ip"))
	} else {
		q.IP = ip.Unmap()
	}
	if p := v.Get("port"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return q, fmt.Errorf("%q is not a port number (0-65535)", p)
		}
		q.Port, q.HasPort = uint16(n), true
	}
	switch pr := wire.Proto(v.Get("proto")); pr {
	case "", wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP:
		q.Proto = pr
	default:
		return q, fmt.Errorf("protocol %q is not one of: tcp, udp, icmp", pr)
	}
	return q, nil
}
