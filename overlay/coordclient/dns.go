package coordclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/warrennet/warren/overlay/wire"
)

// DNS lists the split-DNS domains, sorted by domain.
func (a *Admin) DNS(ctx context.Context) ([]wire.DNSDomain, error) {
	var resp []wire.DNSDomain
	if err := a.c.do(ctx, http.MethodGet, wire.PathDNS, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// SetDNS adds a split-DNS domain, or replaces its servers, and returns
// the entry as the coordinator stored it. The coordinator refuses (a
// *wire.Error with CodeInvalid) a server outside every routed prefix.
func (a *Admin) SetDNS(ctx context.Context, req wire.SetDNSRequest) (*wire.DNSDomain, error) {
	var resp wire.DNSDomain
	if err := a.c.do(ctx, http.MethodPost, wire.PathDNS, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// RemoveDNS removes a split-DNS domain.
func (a *Admin) RemoveDNS(ctx context.Context, domain string) error {
	return a.c.do(ctx, http.MethodDelete, wire.PathDNS+"/"+url.PathEscape(domain), nil, nil)
}
