package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/wire"
)

// maxBody bounds every request body except the control stream's.
const maxBody = 1 << 20

// Server serves the coordinator's HTTP API.
type Server struct {
	c   *coord.Coordinator
	log *slog.Logger
	mux *http.ServeMux
	// writeTimeout bounds each write to a control stream.
	writeTimeout time.Duration
	// guard enforces the limits on unauthenticated peers; nil until
	// Configure.
	guard *guard
}

// New returns the API handler for c, serving every endpoint of Endpoints.
func New(c *coord.Coordinator, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{c: c, log: log, mux: http.NewServeMux(), writeTimeout: writeTimeout}
	s.register()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.admit(w, r) {
		s.mux.ServeHTTP(w, r)
	}
}

// admin wraps h with admin authentication.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.c.AuthenticateAdmin(bearer(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		h(w, r)
	}
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, map[string]any{"status": "ok", "version": s.c.Version()})
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	// Refuse a token that cannot enroll before reading the body.
	if err := s.c.CheckEnrollToken(bearer(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	var req wire.EnrollRequest
	if !s.decode(w, r, &req) {
		return
	}
	resp, err := s.c.Enroll(r.Context(), bearer(r), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, resp)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateTokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	resp, err := s.c.CreateToken(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusCreated, resp)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Tokens())
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.c.RevokeToken(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) addRoute(w http.ResponseWriter, r *http.Request) {
	var req wire.AddRouteRequest
	if !s.decode(w, r, &req) {
		return
	}
	route, err := s.c.AddRoute(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, route)
}

func (s *Server) listRoutes(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Routes())
}

func (s *Server) removeRoute(w http.ResponseWriter, r *http.Request) {
	prefix := r.PathValue("addr") + "/" + r.PathValue("bits")
	if err := s.c.RemoveRoute(r.Context(), prefix); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) lookupRoute(w http.ResponseWriter, r *http.Request) {
	res, err := s.c.LookupRoute(r.URL.Query().Get("ip"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, res)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Nodes())
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	if err := s.c.RemoveNode(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Export())
}

// decode reads a JSON body of at most maxBody bytes strictly: unknown
// fields and trailing data are errors. On failure it has answered the
// request: 413 for a body over the limit, refused by its Content-Length
// before anything is read when it declares one.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength > maxBody {
		s.tooLarge(w, maxBody)
		return false
	}
	err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), v)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.tooLarge(w, tooLarge.Limit)
		return false
	case err != nil:
		s.fail(w, r, &wire.Error{Code: wire.CodeInvalid, Message: fmt.Sprintf("bad request body: %v", err)})
		return false
	}
	return true
}

func (s *Server) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		s.log.Debug("writing response", "err", err)
	}
}

// fail answers with err: a *wire.Error as is, anything else as an internal
// error whose details go only to the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var we *wire.Error
	if !errors.As(err, &we) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		we = &wire.Error{Code: wire.CodeInternal, Message: "internal error on the coordinator; see its log"}
	}
	s.reply(w, statusOf(we.Code), we)
}

func statusOf(code string) int {
	switch code {
	case wire.CodeInvalid:
		return http.StatusBadRequest
	case wire.CodeNotFound:
		return http.StatusNotFound
	case wire.CodeConflict:
		return http.StatusConflict
	case wire.CodeUnauthorized:
		return http.StatusUnauthorized
	case wire.CodeTokenUsed, wire.CodeTokenExpired, wire.CodeTokenRevoked:
		return http.StatusForbidden
	case wire.CodeUnavailable:
		return http.StatusServiceUnavailable
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	}
	switch code { // single sign-on
	case wire.CodeSSODisabled:
		return http.StatusNotImplemented
	case wire.CodeLoginExpired, wire.CodeLoginUsed:
		return http.StatusGone
	case wire.CodeLoginRefused:
		return http.StatusForbidden
	}
	switch code { // SSH certificates
	case wire.CodeNoPrincipals, wire.CodeForbidden:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}
