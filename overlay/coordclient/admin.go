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

// DefaultTimeout bounds each admin call unless WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// Option adjusts an Admin client.
type Option func(*options)

type options struct {
	timeout time.Duration
}

// WithTimeout bounds each call, connecting included; zero leaves only the
// caller's context to bound it.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// Admin calls the coordinator's admin API with an admin token. It is safe
// for concurrent use. Every method returns a *wire.Error (errors.As) when
// the coordinator refuses the call, and an error matching ErrUnreachable
// when it cannot be reached; both read well shown as is.
type Admin struct {
	c caller
}

// NewAdmin returns a client for the coordinator tok names, authenticated by
// tok's secret. It does not contact the coordinator.
func NewAdmin(tok wire.Token, opts ...Option) (*Admin, error) {
	if err := tok.Validate(); err != nil {
		return nil, err
	}
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := baseURL(tok.URL, tok.Pin)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return &Admin{c: caller{
		base:    base,
		secret:  tok.Secret,
		hc:      newHTTPClient(newTransport(tok.Pin)),
		timeout: o.timeout,
	}}, nil
}

// Close releases idle connections. Calls in flight are not interrupted;
// the client stays usable. Close always returns nil.
func (a *Admin) Close() error {
	a.c.hc.CloseIdleConnections()
	return nil
}

// URL returns the coordinator's base URL.
func (a *Admin) URL() string { return a.c.base }

// CreateToken creates an enrollment token. The response holds the only
// copy of its secret.
func (a *Admin) CreateToken(ctx context.Context, req wire.CreateTokenRequest) (*wire.CreateTokenResponse, error) {
	var resp wire.CreateTokenResponse
	if err := a.c.do(ctx, http.MethodPost, wire.PathTokens, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Tokens lists every token the coordinator knows, without secrets.
func (a *Admin) Tokens(ctx context.Context) ([]wire.TokenInfo, error) {
	var resp []wire.TokenInfo
	if err := a.c.do(ctx, http.MethodGet, wire.PathTokens, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// RevokeToken revokes the token with the given ID.
func (a *Admin) RevokeToken(ctx context.Context, id string) error {
	return a.c.do(ctx, http.MethodDelete, wire.PathTokens+"/"+url.PathEscape(id), nil, nil)
}

// Routes lists the routes.
func (a *Admin) Routes(ctx context.Context) ([]wire.Route, error) {
	var resp []wire.Route
	if err := a.c.do(ctx, http.MethodGet, wire.PathRoutes, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// AddRoute adds a route and returns it as the coordinator stored it.
func (a *Admin) AddRoute(ctx context.Context, req wire.AddRouteRequest) (*wire.Route, error) {
	var resp wire.Route
	if err := a.c.do(ctx, http.MethodPost, wire.PathRoutes, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// DeleteRoute deletes the route for exactly p.
func (a *Admin) DeleteRoute(ctx context.Context, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("deleting route: invalid prefix")
	}
	path := wire.PathRoutes + "/" + url.PathEscape(p.Addr().String()) + "/" + strconv.Itoa(p.Bits())
	return a.c.do(ctx, http.MethodDelete, path, nil, nil)
}

// LookupRoute reports which route, if any, carries traffic to ip.
func (a *Admin) LookupRoute(ctx context.Context, ip netip.Addr) (*wire.RouteLookup, error) {
	if !ip.IsValid() {
		return nil, fmt.Errorf("looking up route: invalid address")
	}
	var resp wire.RouteLookup
	path := wire.PathRouteLookup + "?" + url.Values{"ip": {ip.String()}}.Encode()
	if err := a.c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Nodes lists the enrolled nodes with their status.
func (a *Admin) Nodes(ctx context.Context) ([]wire.NodeStatus, error) {
	var resp []wire.NodeStatus
	if err := a.c.do(ctx, http.MethodGet, wire.PathNodes, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// RemoveNode removes the node with the given name. Its credential stops
// working at once; its control stream ends with ErrRevoked.
func (a *Admin) RemoveNode(ctx context.Context, name string) error {
	return a.c.do(ctx, http.MethodDelete, wire.PathNodes+"/"+url.PathEscape(name), nil, nil)
}

// Export returns every durable fact the coordinator holds, secrets excluded.
func (a *Admin) Export(ctx context.Context) (*wire.Export, error) {
	var resp wire.Export
	if err := a.c.do(ctx, http.MethodGet, wire.PathExport, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
