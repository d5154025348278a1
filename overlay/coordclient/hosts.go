package coordclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/warrennet/warren/overlay/wire"
)

// Hosts lists the named hosts, sorted by name.
func (a *Admin) Hosts(ctx context.Context) ([]wire.Host, error) {
	var resp []wire.Host
	if err := a.c.do(ctx, http.MethodGet, wire.PathHosts, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// AddHost names an address for policy rules and returns the host as the
// coordinator stored it.
func (a *Admin) AddHost(ctx context.Context, req wire.AddHostRequest) (*wire.Host, error) {
	var resp wire.Host
	if err := a.c.do(ctx, http.MethodPost, wire.PathHosts, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// RemoveHost removes the named host. The coordinator refuses (a
// *wire.Error with CodeConflict) while the access policy names it.
func (a *Admin) RemoveHost(ctx context.Context, name string) error {
	return a.c.do(ctx, http.MethodDelete, wire.PathHosts+"/"+url.PathEscape(name), nil, nil)
}
