package api

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/wire"
)

// sshCert signs the calling client's SSH public key. The node is checked
// (a client with a user) before the body is read.
func (s *Server) sshCert(w http.ResponseWriter, r *http.Request) {
	node, err := s.c.AuthenticateNode(bearer(r))
	if err == nil {
		err = coord.CanAskSSHCert(node)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req wire.SSHCertRequest
	if !s.decode(w, r, &req) {
		return
	}
	resp, err := s.c.IssueSSHCert(r.Context(), node, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, resp)
}

func (s *Server) sshCA(w http.ResponseWriter, r *http.Request) {
	ca, err := s.c.SSHCA()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, ca)
}

func (s *Server) rotateSSHCA(w http.ResponseWriter, r *http.Request) {
	var req wire.SSHCARotateRequest
	if !s.decode(w, r, &req) {
		return
	}
	ca, err := s.c.RotateSSHCA(r.Context(), time.Duration(req.Overlap))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, ca)
}

// sshCertLog reads ?user=EMAIL&limit=N; unknown or repeated parameters
// are errors.
func (s *Server) sshCertLog(w http.ResponseWriter, r *http.Request) {
	var user string
	var limit int
	q := r.URL.Query()
	for _, key := range slices.Sorted(maps.Keys(q)) {
		vals := q[key]
		if len(vals) > 1 {
			s.fail(w, r, &wire.Error{Code: wire.CodeInvalid, Message: "parameter " + key + " is given " + strconv.Itoa(len(vals)) + " times"})
			return
		}
		switch key {
		case "user":
			user = vals[0]
		case "limit":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 1 || n > coord.MaxSSHCertLogLimit {
				s.fail(w, r, &wire.Error{Code: wire.CodeInvalid, Message: "limit " + strconv.Quote(vals[0]) + " is not a number from 1 to " + strconv.Itoa(coord.MaxSSHCertLogLimit)})
				return
			}
			limit = n
		default:
			s.fail(w, r, &wire.Error{Code: wire.CodeInvalid, Message: "unknown parameter " + strconv.Quote(key) + " (known: user, limit)"})
			return
		}
	}
	recs, err := s.c.SSHCertLog(r.Context(), user, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, recs)
}
