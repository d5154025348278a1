package api

import (
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

func (s *Server) listDNS(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.DNS())
}

func (s *Server) setDNS(w http.ResponseWriter, r *http.Request) {
	var req wire.SetDNSRequest
	if !s.decode(w, r, &req) {
		return
	}
	d, err := s.c.SetDNS(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, d)
}

func (s *Server) removeDNS(w http.ResponseWriter, r *http.Request) {
	if err := s.c.RemoveDNS(r.Context(), r.PathValue("domain")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
