package api

import (
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

func (s *Server) splitPolicy(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.SplitPolicy())
}

func (s *Server) splitEffective(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, s.c.EffectiveSplit())
}

func (s *Server) splitMode(w http.ResponseWriter, r *http.Request) {
	var req wire.SplitModeRequest
	if !s.decode(w, r, &req) {
		return
	}
	s.edited(w, r)(s.c.SetSplitMode(r.Context(), req.Mode))
}

func (s *Server) splitAdd(w http.ResponseWriter, r *http.Request) {
	var req wire.SplitEntryRequest
	if !s.decode(w, r, &req) {
		return
	}
	s.edited(w, r)(s.c.AddSplitEntry(r.Context(), req))
}

func (s *Server) splitRemove(w http.ResponseWriter, r *http.Request) {
	s.edited(w, r)(s.c.RemoveSplitEntry(r.Context(), r.PathValue("addr")+"/"+r.PathValue("bits")))
}

func (s *Server) splitReset(w http.ResponseWriter, r *http.Request) {
	s.edited(w, r)(s.c.ResetSplit(r.Context()))
}

// edited answers a split edit with its result.
func (s *Server) edited(w http.ResponseWriter, r *http.Request) func(wire.SplitEditResponse, error) {
	return func(resp wire.SplitEditResponse, err error) {
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.reply(w, http.StatusOK, resp)
	}
}
