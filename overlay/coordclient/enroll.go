package coordclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/warrennet/warren/overlay/wire"
)

// Enroll registers a node with the coordinator tok names, authorised by
// tok's secret, and returns the node as enrolled with its credential for
// the control stream. The call is bounded by ctx and DefaultTimeout.
//
// A refused token returns a *wire.Error (codes CodeTokenUsed,
// CodeTokenExpired, CodeTokenRevoked, CodeUnauthorized, ...).
func Enroll(ctx context.Context, tok wire.Token, req wire.EnrollRequest) (*wire.EnrollResponse, error) {
	if err := tok.Validate(); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("enroll request: %w", err)
	}
	base, err := baseURL(tok.URL, tok.Pin)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	t := newTransport(tok.Pin)
	defer t.CloseIdleConnections()
	c := caller{base: base, secret: tok.Secret, hc: newHTTPClient(t), timeout: DefaultTimeout}
	var resp wire.EnrollResponse
	if err := c.do(ctx, http.MethodPost, wire.PathEnroll, req, &resp); err != nil {
		return nil, err
	}
	if resp.Credential == "" {
		return nil, fmt.Errorf("the coordinator at %s answered the enrollment without a credential", base)
	}
	return &resp, nil
}
