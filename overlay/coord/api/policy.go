package api

import (
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Policy())
}

func (s *Server) setPolicy(w http.ResponseWriter, r *http.Request) {
	var req wire.SetPolicyRequest
	if !s.decode(w, r, &req) {
		return
	}
	resp, err := s.c.SetPolicy(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, resp)
}

func (s *Server) resetPolicy(w http.ResponseWriter, r *http.Request) {
	resp, err := s.c.ResetPolicy(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, resp)
}

// policyWhy answers 200 with the decision, allow or deny alike; 400 when
// the question cannot be answered.
func (s *Server) policyWhy(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d, err := s.c.PolicyWhy(q.Get("user"), q.Get("dest"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, d)
}
