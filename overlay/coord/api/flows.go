package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/wire"
)

// maxFlowReportBody bounds a flow report's body: wire.MaxFlowReport
// records of the longest fields fit in it.
const maxFlowReportBody = 4 << 20

// reportFlows takes a connector's flow report, authenticated with its
// node credential as the control stream is. Fields this coordinator does
// not know are ignored, as on the control stream, so a newer connector's
// reports are not refused (and left to pile up in its spool).
func (s *Server) reportFlows(w http.ResponseWriter, r *http.Request) {
	node, err := s.c.AuthenticateNode(bearer(r))
	if err == nil {
		err = coord.CanReportFlows(node) // before reading the body
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var rep wire.FlowReport
	if r.ContentLength > maxFlowReportBody {
		err = &http.MaxBytesError{Limit: maxFlowReportBody}
	} else {
		err = decodeFlowReport(http.MaxBytesReader(w, r.Body, maxFlowReportBody), &rep)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.reply(w, http.StatusRequestEntityTooLarge, &wire.Error{Code: wire.CodeInvalid,
			Message: fmt.Sprintf("flow report is larger than %d MiB; send at most %d records at a time", maxFlowReportBody>>20, wire.MaxFlowReport)})
		return
	case err != nil:
		s.fail(w, r, &wire.Error{Code: wire.CodeInvalid, Message: fmt.Sprintf("bad request body: %v", err)})
		return
	}
	if err := s.c.ReportFlows(r.Context(), node, rep.Records); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// decodeFlowReport decodes a flow report leniently: unknown fields are
// ignored (a newer connector's), trailing data is an error.
func decodeFlowReport(r io.Reader, rep *wire.FlowReport) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(rep); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON body")
	}
	return nil
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	q, err := parseFlowQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, &wire.Error{Code: wire.CodeInvalid, Message: err.Error()})
		return
	}
	recs, err := s.c.Flows(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, http.StatusOK, recs)
}

// parseFlowQuery reads the parameters of GET wire.PathFlows: user, dest
// (a CIDR prefix or an IP address), since (a Go duration), denied (a
// boolean) and limit. Unknown or repeated parameters are errors.
func parseFlowQuery(v url.Values) (coord.FlowQuery, error) {
	var q coord.FlowQuery
	for _, key := range slices.Sorted(maps.Keys(v)) {
		vals := v[key]
		if len(vals) > 1 {
			return q, fmt.Errorf("parameter %s is given %d times", key, len(vals))
		}
		val := vals[0]
		switch key {
		case "user":
			if err := wire.ValidateUser(val); err != nil {
				return q, err
			}
			q.User = val
		case "dest":
			p, err := parseDest(val)
			if err != nil {
				return q, err
			}
			q.Dest = p
		case "since":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return q, fmt.Errorf("since %q is not a positive duration (for example 30m or 24h)", val)
			}
			q.Since = d
		case "denied":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return q, fmt.Errorf("denied %q is not true or false", val)
			}
			q.DeniedOnly = b
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > coord.MaxFlowLimit {
				return q, fmt.Errorf("limit %q is not a number from 1 to %d", val, coord.MaxFlowLimit)
			}
			q.Limit = n
		default:
			return q, fmt.Errorf("unknown parameter %q (known: user, dest, since, denied, limit)", key)
		}
	}
	return q, nil
}

// parseDest reads a CIDR prefix, or an IP address as the prefix of just
// that address.
func parseDest(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("dest %q is not a CIDR prefix or an IP address", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("dest %q is not a CIDR prefix or an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
