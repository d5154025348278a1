package api

import (
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.Hosts())
}

func (s *Server) addHost(w http.ResponseWriter, r *http.Request) {
	var req wire.AddHostRequest
	if !s.decode(w, r, &req) {
		return
	}
	h, err := s.c.AddHost(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusCreated, h)
}

func (s *Server) removeHost(w http.ResponseWriter, r *http.Request) {
	if err := s.c.RemoveHost(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
