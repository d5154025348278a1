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
}

// Login errors a caller may branch on.
var (
	// ErrLoginExpired: nobody finished the login in time, or the
	// coordinator forgot it (it restarted).
	ErrLoginExpired = errors.New("the login link expired before the login finished: run warren up again")
	// ErrNoSSO: the coordinator has no identity provider.
	ErrNoSSO = errors.New("the coordinator has no single sign-on: enroll with a token instead (warren up --token-file FILE)")
)

// loginGrace is how long past the login's expiry LoginEnroll still waits
// for an unreachable coordinator before it calls the login expired.
const loginGrace = 30 * time.Second

// LoginEnroll enrolls a laptop by single sign-on: it generates the node's
// key first, starts a login bound to it, shows the link, and waits
// (asking again every wire.LoginWaitMax, and again after a pause while
// the coordinator cannot be reached) until a person has logged in, the
// login expired or ctx ends. The identity is saved in dir before it is
// returned. A node that is already enrolled is refused: log out first.
func LoginEnroll(ctx context.Context, dir *nodestate.Dir, cfg LoginConfig) (*nodestate.Identity, error) {
	if _, err := dir.LoadIdentity(); err == nil {
		return nil, errors.New("this node is already enrolled: log out first (warren logout)")
	} else if !errors.Is(err, nodestate.ErrNoIdentity) {
		return nil, err
	}
	l, err := coordclient.NewLogin(cfg.URL, cfg.Pin)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	priv, err := nodestate.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	start, err := l.StartLogin(ctx, wire.LoginStartRequest{PublicKey: priv.PublicKey(), Hostname: hostnameOf(cfg.Hostname)})
	if err != nil {
		return nil, loginError("starting the login", err)
	}
	if cfg.Show != nil {
		cfg.Show(*start)
	}
	wctx := ctx
	if !start.ExpiresAt.IsZero() {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, start.ExpiresAt.Add(loginGrace))
		defer cancel()
	}
	e, err := l.WaitLogin(wctx, start.WaitSecret)
	if err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			return nil, ErrLoginExpired
		}
		return nil, loginError("waiting for the login", err)
	}
	if e.Node.Role != wire.RoleClient || (!e.Node.PublicKey.IsZero() && e.Node.PublicKey != priv.PublicKey()) {
		return nil, fmt.Errorf("the coordinator enrolled a %s with another key for this login; ask an admin to remove node %s", e.Node.Role, e.Node.Name)
	}
	id := &nodestate.Identity{PrivateKey: priv, Node: e.Node, Credential: e.Credential, URL: cfg.URL, Pin: cfg.Pin}
	if err := dir.SaveIdentity(id); err != nil {
		return nil, fmt.Errorf("logged in as %s but could not save the identity (log in again): %w", e.Node.Name, err)
	}
	return id, nil
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
