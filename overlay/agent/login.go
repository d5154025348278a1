package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
)

// LoginConfig configures LoginEnroll.
type LoginConfig struct {
	// URL and Pin locate and authenticate the coordinator (Pin: the
	// SHA-256 of its certificate in hex; empty for a CA-issued one).
	URL, Pin string
	// Hostname is offered as the node's name.
	Hostname string
	// Show is called once the login has started, with the link a person
	// opens and the code the page shows; from the caller's goroutine.
	Show func(wire.LoginStartResponse)
	// Retry is how long to wait before asking again after the
	// coordinator could not be reached; zero means 2 s.
	Retry time.Duration
}

// Login errors a caller may branch on.
var (
	// ErrLoginExpired: nobody finished the login in time, or the
	// coordinator forgot it (it restarted).
	ErrLoginExpired = errors.New("the login link expired before the login finished: run warren up again")
	// ErrNoSSO: the coordinator has no identity provider.
	ErrNoSSO = errors.New("the coordinator has no single sign-on: enroll with a token instead (warren up --token-file FILE)")
)

// LoginEnroll enrolls a laptop by single sign-on: it generates the node's
// key first, starts a login bound to it, shows the link, and waits
// (asking again every wire.LoginWaitMax) until a person has logged in,
// the login expired or ctx ends. The identity is saved in dir before it
// is returned. A node that is already enrolled is refused: log out first.
func LoginEnroll(ctx context.Context, dir *nodestate.Dir, cfg LoginConfig) (*nodestate.Identity, error) {
	if _, err := dir.LoadIdentity(); err == nil {
		return nil, errors.New("this node is already enrolled: log out first (warren logout)")
	} else if !errors.Is(err, nodestate.ErrNoIdentity) {
		return nil, err
	}
	if err := wire.ValidateCoordinatorURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Retry == 0 {
		cfg.Retry = 2 * time.Second
	}
	priv, err := nodestate.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	start, err := coordclient.StartLogin(ctx, cfg.URL, cfg.Pin, wire.LoginStartRequest{PublicKey: priv.PublicKey(), Hostname: hostnameOf(cfg.Hostname)})
	if err != nil {
		return nil, loginError("starting the login", err)
	}
	if cfg.Show != nil {
		cfg.Show(*start)
	}
	resp, err := waitLogin(ctx, cfg, start)
	if err != nil {
		return nil, err
	}
	e := resp.Enroll
	if e.Node.Role != wire.RoleClient || (!e.Node.PublicKey.IsZero() && e.Node.PublicKey != priv.PublicKey()) {
		return nil, fmt.Errorf("the coordinator enrolled a %s with another key for this login; ask an admin to remove node %s", e.Node.Role, e.Node.Name)
	}
	id := &nodestate.Identity{PrivateKey: priv, Node: e.Node, Credential: e.Credential, URL: cfg.URL, Pin: cfg.Pin}
	if err := dir.SaveIdentity(id); err != nil {
		return nil, fmt.Errorf("logged in as %s but could not save the identity (log in again): %w", e.Node.Name, err)
	}
	return id, nil
}

// waitLogin asks the coordinator until the login is done. An unreachable
// coordinator is asked again after cfg.Retry, until the login's expiry.
func waitLogin(ctx context.Context, cfg LoginConfig, start *wire.LoginStartResponse) (*wire.LoginWaitResponse, error) {
	for {
		resp, err := coordclient.WaitLogin(ctx, cfg.URL, cfg.Pin, wire.LoginWaitRequest{WaitSecret: start.WaitSecret})
		switch {
		case err == nil && resp.Done && resp.Enroll != nil && resp.Enroll.Credential != "":
			return resp, nil
		case err == nil && resp.Done:
			return nil, errors.New("the coordinator finished the login without a credential: run warren up again")
		case err == nil:
			continue
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, coordclient.ErrUnreachable):
			if !start.ExpiresAt.IsZero() && time.Now().After(start.ExpiresAt) {
				return nil, fmt.Errorf("%w (last: %v)", ErrLoginExpired, err)
			}
			select {
			case <-time.After(cfg.Retry):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		default:
			return nil, loginError("waiting for the login", err)
		}
	}
}

// loginError turns the coordinator's refusals into the errors a person
// can act on.
func loginError(doing string, err error) error {
	var we *wire.Error
	if !errors.As(err, &we) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	switch we.Code {
	case wire.CodeSSODisabled:
		return ErrNoSSO
	case wire.CodeLoginExpired, wire.CodeNotFound, wire.CodeLoginUsed:
		return ErrLoginExpired
	case wire.CodeLoginRefused:
		return fmt.Errorf("the login was refused: %s", we.Message)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// hostnameOf keeps a hostname the coordinator would accept, or none (it
// names the node "laptop" then).
func hostnameOf(h string) string {
	if wire.ValidateText("hostname", h, wire.MaxHostnameLen) != nil {
		return ""
	}
	return h
}
