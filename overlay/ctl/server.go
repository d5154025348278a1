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
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Backend is what the daemon offers its socket.
type Backend interface {
	// Status reports the daemon's state now.
	Status(ctx context.Context) Status
	// Up brings the tunnel up, enrolling first if needed, and returns
	// once traffic can flow or with the reason it cannot. It calls
	// progress for each step, from its own goroutine.
	Up(ctx context.Context, req UpRequest, progress func(string)) error
	// Down removes the tunnel and everything installed for it. The node
	// stays enrolled.
	Down(ctx context.Context) error
	// Why explains what happens to traffic for q.IP and, if q names a
	// flow, what the access policy decides about it.
	Why(ctx context.Context, q WhyQuery) (Why, error)
	// EditPrefs changes the settings edit names, keeps the others, and
	// applies the result to the running tunnel.
	EditPrefs(ctx context.Context, edit PrefsEdit) (Prefs, error)
}

// Server serves a Backend on a unix socket.
type Server struct {
	b   Backend
	log *slog.Logger
}

// NewServer returns a server for b.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{b: b, log: log}
}

// Listen creates the socket at path, mode 0600, replacing a stale one
// left by a crash but refusing to take over a live daemon's.
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
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.b.Status(r.Context()))
	})
	mux.HandleFunc("POST "+pathDown, func(w http.ResponseWriter, r *http.Request) {
		if err := s.b.Down(r.Context()); err != nil {
			writeJSON(w, http.StatusInternalServerError, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, Progress{Done: true, Message: "down"})
	})
	mux.HandleFunc("POST "+pathUp, s.up)
	mux.HandleFunc("POST "+pathPrefs, func(w http.ResponseWriter, r *http.Request) {
		var edit PrefsEdit
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&edit); err != nil {
			writeJSON(w, http.StatusBadRequest, Progress{Done: true, Error: "bad request: " + err.Error()})
			return
		}
		p, err := s.b.EditPrefs(r.Context(), edit)
		if err != nil {
			writeJSON(w, http.StatusConflict, Progress{Done: true, Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET "+pathWhy, func(w http.ResponseWriter, r *http.Request) {
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
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
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
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// up streams progress as newline-delimited JSON, ending with Done.
func (s *Server) up(w http.ResponseWriter, r *http.Request) {
	var req UpRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, Progress{Done: true, Error: "bad request: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	msgs := make(chan string, 16)
	result := make(chan error, 1)
	go func() {
		defer close(msgs)
		result <- s.b.Up(r.Context(), req, func(m string) {
			select {
			case msgs <- m:
			case <-r.Context().Done():
			}
		})
	}()
	for m := range msgs {
		_ = enc.Encode(Progress{Message: m})
		_ = rc.Flush()
	}
	final := Progress{Done: true, Message: "up"}
	if err := <-result; err != nil {
		final = Progress{Done: true, Error: err.Error()}
	}
	_ = enc.Encode(final)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// parseWhyQuery reads ?ip=IP[&port=PORT][&proto=PROTO].
func parseWhyQuery(v url.Values) (WhyQuery, error) {
	var q WhyQuery
	ip, err := netip.ParseAddr(v.Get("ip"))
	if err != nil || ip.Zone() != "" {
		return q, fmt.Errorf("%q is not an IP address", v.Get("ip"))
	}
	q.IP = ip.Unmap()
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
