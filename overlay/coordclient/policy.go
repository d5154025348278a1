package coordclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/warrennet/warren/overlay/wire"
)

// Policy returns the access-policy document as set, or allow-all mode.
func (a *Admin) Policy(ctx context.Context) (*wire.PolicyDocument, error) {
	var d wire.PolicyDocument
	if err := a.c.do(ctx, http.MethodGet, wire.PathPolicy, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// SetPolicy sets the access-policy document, or with req.DryRun only
// reports what it would change. A refused document (a *wire.Error with
// CodeInvalid naming the line) changes nothing.
func (a *Admin) SetPolicy(ctx context.Context, req wire.SetPolicyRequest) (*wire.SetPolicyResponse, error) {
	var resp wire.SetPolicyResponse
	if err := a.c.do(ctx, http.MethodPut, wire.PathPolicy, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// ResetPolicy removes the access-policy document: back to allow-all.
func (a *Admin) ResetPolicy(ctx context.Context) (*wire.SetPolicyResponse, error) {
	var resp wire.SetPolicyResponse
	if err := a.c.do(ctx, http.MethodPost, wire.PathPolicyReset, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// PolicyWhy asks whether user may reach dest ("IP:PORT[/PROTO]" or
// "HOST:PORT[/PROTO]") and which rule decides. A denial is an answer, not
// an error; a question the coordinator cannot answer (bad user or
// destination) is a *wire.Error with CodeInvalid.
func (a *Admin) PolicyWhy(ctx context.Context, user, dest string) (*wire.PolicyDecision, error) {
	var d wire.PolicyDecision
	path := wire.PathPolicyWhy + "?" + url.Values{"user": {user}, "dest": {dest}}.Encode()
	if err := a.c.do(ctx, http.MethodGet, path, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
