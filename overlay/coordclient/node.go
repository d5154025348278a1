package coordclient

import "errors"

// NodeClient calls the coordinator's node endpoints other than the control
// stream (which Session holds), authenticated by a node credential. It is
// safe for concurrent use. Its methods return a *wire.Error (errors.As)
// when the coordinator refuses the call, and an error matching
// ErrUnreachable when it cannot be reached.
type NodeClient struct {
	c caller
}

// NewNodeClient returns a client of the coordinator at url, whose
// certificate is pinned by pin (empty for a CA-issued certificate),
// authenticated by the node credential from enrollment. Each call is
// bounded by DefaultTimeout unless WithTimeout says otherwise. It does not
// contact the coordinator.
func NewNodeClient(url, pin, credential string, opts ...Option) (*NodeClient, error) {
	base, err := baseURL(url, pin)
	if err != nil {
		return nil, err
	}
	if credential == "" {
		return nil, errors.New("node credential is missing")
	}
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return &NodeClient{c: caller{
		base:    base,
		secret:  credential,
		hc:      newHTTPClient(newTransport(pin)),
		timeout: o.timeout,
	}}, nil
}

// Close releases idle connections. Calls in flight are not interrupted;
// the client stays usable. Close always returns nil.
func (n *NodeClient) Close() error {
	n.c.hc.CloseIdleConnections()
	return nil
}

// URL returns the coordinator's base URL.
func (n *NodeClient) URL() string { return n.c.base }
