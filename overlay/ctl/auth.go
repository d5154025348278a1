package ctl

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// Caller is the process on the other end of a control connection, as the
// kernel reports it (SO_PEERCRED): never what the request says.
type Caller struct {
	UID uint32
	GID uint32
	PID int32
}

type callerKey struct{}

// callerInfo is what ConnContext learnt about a connection's peer.
type callerInfo struct {
	c   Caller
	err error
}

// CallerFrom returns the caller of the request whose context ctx is, as
// the server saw it. ok is false outside a request the server authorised.
func CallerFrom(ctx context.Context) (c Caller, ok bool) {
	ci, ok := ctx.Value(callerKey{}).(callerInfo)
	if !ok || ci.err != nil {
		return Caller{}, false
	}
	return ci.c, true
}

// connContext records the peer's credentials for every request on c.
func connContext(ctx context.Context, c net.Conn) context.Context {
	cr, err := peerCred(c)
	return context.WithValue(ctx, callerKey{}, callerInfo{c: cr, err: err})
}

// access is who may make a call.
type access int

const (
	// accessOperator: root, the daemon's own user, and the operator.
	accessOperator access = iota
	// accessRoot: root and the daemon's own user only.
	accessRoot
)

// guard authorises each request by its caller before h sees it. action
// completes "… may" in the refusal, as in "bring the tunnel up".
func (s *Server) guard(level access, action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ci, _ := r.Context().Value(callerKey{}).(callerInfo)
		if ci.err != nil {
			if c, ok := s.cookieCaller(r); ok {
				ci = callerInfo{c: c}
				r = r.WithContext(context.WithValue(r.Context(), callerKey{}, ci))
			}
		}
		if ci.err != nil {
			s.log.Warn("refusing a control request: cannot tell who sent it", "err", ci.err)
			writeJSON(w, http.StatusForbidden, Progress{Done: true, Error: "the daemon cannot tell who is calling: " + ci.err.Error()})
			return
		}
		if err := s.authorize(r.Context(), ci.c, level, action); err != nil {
			s.log.Info("refused a control request", "uid", ci.c.UID, "pid", ci.c.PID, "call", r.Method+" "+r.URL.Path)
			writeJSON(w, http.StatusForbidden, Progress{Done: true, Error: err.Error()})
			return
		}
		h(w, r)
	}
}

// authorize decides: root and the daemon's own user may do everything,
// the operator what level accessOperator allows, nobody else anything.
func (s *Server) authorize(ctx context.Context, c Caller, level access, action string) error {
	if c.UID == 0 || c.UID == s.euid {
		return nil
	}
	if level == accessRoot {
		return fmt.Errorf("only root may %s (the operator may read the status and get ssh certificates)", action)
	}
	if op := s.b.Prefs(ctx).Operator; op != nil && op.UID == c.UID {
		return nil
	}
	return fmt.Errorf("only root or this machine's operator (warren set --operator USER) may %s", action)
}
