package coordclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Login calls the coordinator's single-sign-on endpoints on behalf of a
// node that is not enrolled yet: StartLogin, then WaitLogin until the
// person has logged in. It carries no credential (the wait secret is the
// proof) and is safe for concurrent use.
type Login struct {
	c caller
}

// NewLogin returns a login client of the coordinator at url, whose
// certificate is pinned by pin (empty for a CA-issued certificate). It
// does not contact the coordinator.
func NewLogin(url, pin string) (*Login, error) {
	base, err := baseURL(url, pin)
	if err != nil {
		return nil, err
	}
	// No per-call timeout here: each call sets its own (a wait is held
	// open up to wire.LoginWaitMax).
	return &Login{c: caller{base: base, hc: newHTTPClient(newTransport(pin))}}, nil
}

// Close releases idle connections. It always returns nil.
func (l *Login) Close() error {
	l.c.hc.CloseIdleConnections()
	return nil
}

// URL returns the coordinator's base URL.
func (l *Login) URL() string { return l.c.base }

// StartLogin starts a login for the node whose key and hostname req
// carries. The answer's URL is for the person to open in a browser; its
// Code is what the login page shows; its WaitSecret is for WaitLogin and
// must not leave the node. A coordinator without single sign-on answers
// a *wire.Error with CodeSSODisabled.
func (l *Login) StartLogin(ctx context.Context, req wire.LoginStartRequest) (*wire.LoginStartResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("login request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	var resp wire.LoginStartResponse
	if err := l.c.do(ctx, http.MethodPost, wire.PathLogin, req, &resp); err != nil {
		return nil, err
	}
	if resp.URL == "" || resp.WaitSecret == "" {
		return nil, fmt.Errorf("the coordinator at %s answered the login without a link or wait secret", l.c.base)
	}
	if u, err := url.Parse(resp.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("the coordinator at %s answered the login with a link that is not http(s)", l.c.base)
	}
	return &resp, nil
}

// waitRetry is how long WaitLogin waits after the coordinator could not be
// reached before it asks again.
const waitRetry = 2 * time.Second

// WaitLogin waits until the person has logged in and returns the node's
// enrollment (its record and credential), which the coordinator hands out
// once. It asks again every wire.LoginWaitMax while the login is pending,
// and again after a short pause when the coordinator cannot be reached,
// until ctx ends (then it returns ctx.Err()). A login that expired
// (CodeLoginExpired, also after a coordinator restart: CodeNotFound), was
// refused (CodeLoginRefused) or already collected (CodeLoginUsed) returns
// that *wire.Error.
func (l *Login) WaitLogin(ctx context.Context, waitSecret string) (*wire.EnrollResponse, error) {
	for {
		resp, err := l.waitOnce(ctx, waitSecret)
		switch {
		case err == nil && resp.Done:
			if resp.Enroll == nil || resp.Enroll.Credential == "" {
				return nil, fmt.Errorf("the coordinator at %s finished the login without a credential", l.c.base)
			}
			return resp.Enroll, nil
		case err == nil:
			continue
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrUnreachable):
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(waitRetry):
			}
		default:
			return nil, err
		}
	}
}

func (l *Login) waitOnce(ctx context.Context, waitSecret string) (*wire.LoginWaitResponse, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, wire.LoginWaitMax+DefaultTimeout, errCallTimeout)
	defer cancel()
	var resp wire.LoginWaitResponse
	if err := l.c.do(ctx, http.MethodPost, wire.PathLoginWait, wire.LoginWaitRequest{WaitSecret: waitSecret}, &resp); err != nil {
		if errors.Is(context.Cause(ctx), errCallTimeout) {
			return nil, &reachError{url: l.c.base, cause: fmt.Sprintf("no answer within %v", wire.LoginWaitMax+DefaultTimeout), err: err}
		}
		return nil, err
	}
	return &resp, nil
}

// Logout removes the calling node at the coordinator: its credential
// stops working at once. Only a client may log out.
func (n *NodeClient) Logout(ctx context.Context) error {
	return n.c.do(ctx, http.MethodPost, wire.PathLogout, nil, nil)
}
