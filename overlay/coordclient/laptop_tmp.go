package coordclient

// Thin calls the laptop needs, written against the wire contract until
// the real ones (h-login: StartLogin, WaitLogin, Logout; h-sshca: SSHCert)
// are merged. This file is dropped on that merge.

import (
	"context"
	"net/http"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// StartLogin starts enrolling a laptop by single sign-on at the
// coordinator at url (pinned by pin).
func StartLogin(ctx context.Context, url, pin string, req wire.LoginStartRequest) (*wire.LoginStartResponse, error) {
	c, err := anonCaller(url, pin, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	defer c.hc.CloseIdleConnections()
	var resp wire.LoginStartResponse
	if err := c.do(ctx, http.MethodPost, wire.PathLogin, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// WaitLogin waits up to wire.LoginWaitMax for the login to finish.
func WaitLogin(ctx context.Context, url, pin string, req wire.LoginWaitRequest) (*wire.LoginWaitResponse, error) {
	c, err := anonCaller(url, pin, wire.LoginWaitMax+DefaultTimeout)
	if err != nil {
		return nil, err
	}
	defer c.hc.CloseIdleConnections()
	var resp wire.LoginWaitResponse
	if err := c.do(ctx, http.MethodPost, wire.PathLoginWait, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func anonCaller(url, pin string, timeout time.Duration) (*caller, error) {
	base, err := baseURL(url, pin)
	if err != nil {
		return nil, err
	}
	return &caller{base: base, hc: newHTTPClient(newTransport(pin)), timeout: timeout}, nil
}

// Logout removes the calling node.
func (n *NodeClient) Logout(ctx context.Context) error {
	return n.c.do(ctx, http.MethodPost, wire.PathLogout, nil, nil)
}

// SSHCert asks for a certificate on an SSH public key.
func (n *NodeClient) SSHCert(ctx context.Context, req wire.SSHCertRequest) (*wire.SSHCertResponse, error) {
	var resp wire.SSHCertResponse
	if err := n.c.do(ctx, http.MethodPost, wire.PathSSHCert, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
