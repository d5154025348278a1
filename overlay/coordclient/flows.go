package coordclient

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// ReportFlows sends a connector's flow records to the coordinator; a nil
// error means they are stored durably. Records the coordinator already
// holds (by ID) are ignored, so a batch whose answer was lost may be sent
// again. At most wire.MaxFlowReport records go in one call; an empty batch
// is not sent.
//
// A *wire.Error with CodeInvalid means the coordinator will never take
// this batch as it is; CodeUnauthorized, that the node was removed (or is
// not a connector). Other errors, ErrUnreachable among them, are worth
// retrying.
func (n *NodeClient) ReportFlows(ctx context.Context, recs []wire.FlowRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > wire.MaxFlowReport {
		return fmt.Errorf("reporting flows: %d records, at most %d go in one report", len(recs), wire.MaxFlowReport)
	}
	return n.c.do(ctx, http.MethodPost, wire.PathFlowReport, wire.FlowReport{Records: recs}, nil)
}

// FlowQuery selects flow records. Zero fields select everything.
type FlowQuery struct {
	// User selects the records of exactly this user.
	User string
	// Dest selects the records whose destination address it contains.
	Dest netip.Prefix
	// Since selects the records that started at most this long ago.
	Since time.Duration
	// DeniedOnly selects the denials.
	DeniedOnly bool
	// Limit bounds the number of records; zero means the coordinator's
	// default (1000). The coordinator takes at most 10000.
	Limit int
}

// values encodes q as the parameters of GET wire.PathFlows.
func (q FlowQuery) values() url.Values {
	v := url.Values{}
	if q.User != "" {
		v.Set("user", q.User)
	}
	if q.Dest.IsValid() {
		v.Set("dest", q.Dest.String())
	}
	if q.Since != 0 {
		v.Set("since", q.Since.String())
	}
	if q.DeniedOnly {
		v.Set("denied", "1")
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Flows returns the flow records q selects, newest first.
func (a *Admin) Flows(ctx context.Context, q FlowQuery) ([]wire.FlowRecord, error) {
	path := wire.PathFlows
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	var resp []wire.FlowRecord
	if err := a.c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}
