package api

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// loginWaitSlack is how much sooner than the request's read time-out a
// login wait answers "not yet": on HTTP/1.1 the server cancels a request
// whose connection passes its read deadline, and a wait is not
// authenticated, so it does not get the longer one.
const loginWaitSlack = 5 * time.Second

// startLogin starts a single-sign-on login for an unenrolled laptop. It
// takes no credential: it is charged to the source's unauthenticated
// budget like enrollment.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request) {
	if err := s.c.CheckSSO(); err != nil { // before reading the body
		s.fail(w, r, err)
		return
	}
	var req wire.LoginStartRequest
	if !s.decode(w, r, &req) {
		return
	}
	resp, err := s.c.StartLogin(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, resp)
}

// waitLogin holds the request until the login finishes or the wait's
// bound passes; the wait secret in the body is the proof.
func (s *Server) waitLogin(w http.ResponseWriter, r *http.Request) {
	if err := s.c.CheckSSO(); err != nil {
		s.fail(w, r, err)
		return
	}
	var req wire.LoginWaitRequest
	if !s.decode(w, r, &req) {
		return
	}
	wait := wire.LoginWaitMax
	if s.guard != nil {
		wait = min(wait, s.guard.limits.ReadTimeout-loginWaitSlack)
	}
	ctx, cancel := context.WithTimeoutCause(r.Context(), wait, errWaitBound)
	defer cancel()
	resp, err := s.c.WaitLogin(ctx, req.WaitSecret)
	if err != nil && errors.Is(context.Cause(ctx), errWaitBound) {
		resp, err = wire.LoginWaitResponse{}, nil
	}
	if err != nil {
		if r.Context().Err() != nil {
			return // the laptop went away
		}
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, resp)
}

var errWaitBound = errors.New("login wait bound")

// loginPage is the login link a person opens: a redirect to the identity
// provider, or a page saying why not.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	to, err := s.c.LoginPage(r.PathValue("id"))
	if err != nil {
		s.page(w, r, err, "")
		return
	}
	browserHeaders(w)
	http.Redirect(w, r, to, http.StatusFound)
}

// oidcCallback is where the provider sends the browser back: the login
// finishes, and the page says as whom and which machine.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := q.Get("code")
	if q.Get("error") != "" {
		code = "" // the provider refused or the person cancelled
	}
	res, err := s.c.Callback(r.Context(), q.Get("state"), code)
	if err != nil {
		s.page(w, r, err, q.Get("error"))
		return
	}
	browserHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if err := pageTemplate.Execute(w, pageData{
		Title: "Logged in",
		Line:  "Logged in as " + res.Email + "; machine " + res.Hostname + " (code " + res.Code + ") is enrolled as " + res.Node + ". You can close this page.",
	}); err != nil {
		s.log.Debug("writing login page", "err", err)
	}
}

// page answers a browser with err as a small HTML page of one line.
func (s *Server) page(w http.ResponseWriter, r *http.Request, err error, providerError string) {
	var we *wire.Error
	if !errors.As(err, &we) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		we = &wire.Error{Code: wire.CodeInternal, Message: "internal error on the coordinator; see its log"}
	}
	line := we.Message
	if providerError != "" {
		line += " (the identity provider said: " + providerError + ")"
	}
	browserHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(statusOf(we.Code))
	if err := pageTemplate.Execute(w, pageData{Title: "Login failed", Line: line}); err != nil {
		s.log.Debug("writing login page", "err", err)
	}
}

// browserHeaders keep login pages out of caches, frames and Referer
// headers (their URLs carry the login ID, state and code).
func browserHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
}

type pageData struct{ Title, Line string }

// pageTemplate escapes everything it is given (html/template).
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Warren: {{.Title}}</title>
<style>body{font-family:sans-serif;margin:3em auto;max-width:40em}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Line}}</p></body></html>
`))

// logout removes the calling client.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	node, err := s.c.AuthenticateNode(bearer(r))
	if err == nil {
		err = s.c.Logout(r.Context(), node)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Users())
}

func (s *Server) removeUser(w http.ResponseWriter, r *http.Request) {
	if err := s.c.RemoveUser(r.Context(), r.PathValue("email")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
