package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
)

// NodeAPI is what the engine asks the coordinator besides the control
// stream, as the enrolled node (coordclient.NodeClient in production).
type NodeAPI interface {
	// SSHCert signs an SSH public key for this node's user; a refusal
	// is a *wire.Error.
	SSHCert(ctx context.Context, pub string, validity time.Duration) (*wire.SSHCertResponse, error)
	// Logout removes this node at the coordinator.
	Logout(ctx context.Context) error
	// Close releases the connections; calls in flight are not cut.
	Close() error
}

// newNodeAPI is the production NodeAPI: the coordinator the identity names.
func newNodeAPI(id *nodestate.Identity) (NodeAPI, error) {
	return coordclient.NewNodeClient(id.URL, id.Pin, id.Credential)
}

// logoutTimeout bounds telling the coordinator about a logout: an
// unreachable coordinator must not keep the laptop enrolled.
const logoutTimeout = 10 * time.Second

// enrollment returns the node's identity, enrolling it first if it has
// none: with req.Token, or by a login at req.Coordinator.
func (e *Engine) enrollment(ctx context.Context, req ctl.UpRequest, progress func(ctl.Progress)) (*nodestate.Identity, error) {
	say := func(m string) { progress(ctl.Progress{Message: m}) }
	_, lerr := e.dir.LoadIdentity()
	fresh := errors.Is(lerr, nodestate.ErrNoIdentity)
	switch {
	case fresh && req.Token == "" && req.Coordinator != "":
		return e.login(ctx, req.Coordinator, req.Pin, progress)
	case fresh && req.Token == "":
		return nil, errors.New("this machine is not enrolled yet: log in with warren up --coordinator URL, or pass --token-file FILE (an admin creates one with: warren token create --role client --name NAME)")
	case fresh:
		if tok, perr := wire.ParseToken(req.Token); perr == nil {
			say("enrolling with the coordinator at " + tok.URL)
		}
	}
	id, err := agent.Enroll(ctx, e.dir, req.Token, wire.RoleClient, e.cfg.Hostname)
	if err != nil {
		return nil, err
	}
	if !fresh && req.Coordinator != "" && req.Coordinator != id.URL {
		say("already enrolled at " + id.URL + ": --coordinator is ignored (warren login --coordinator URL moves this machine)")
	}
	if fresh {
		say(fmt.Sprintf("enrolled as %s, overlay address %s", id.Node.Name, id.Node.Address))
	}
	return id, nil
}

// login enrolls the node by single sign-on at the coordinator at url and
// remembers url and pin for the next `warren login`.
func (e *Engine) login(ctx context.Context, url, pin string, progress func(ctl.Progress)) (*nodestate.Identity, error) {
	progress(ctl.Progress{Message: "starting a login at the coordinator at " + url})
	id, err := agent.LoginEnroll(ctx, e.dir, agent.LoginConfig{
		URL: url, Pin: pin, Hostname: e.cfg.Hostname,
		Show: func(s wire.LoginStartResponse) {
			progress(ctl.Progress{Message: fmt.Sprintf("to log in, open: %s (code %s)", s.URL, s.Code), LoginURL: s.URL, Code: s.Code})
		},
	})
	if err != nil {
		return nil, err
	}
	if err := e.editPrefs(func(p *prefs) { p.LoginURL, p.LoginPin = url, pin }); err != nil {
		e.log.Warn("saving prefs", "err", err)
	}
	who := ""
	if id.Node.User != "" {
		who = " for " + id.Node.User
	}
	progress(ctl.Progress{Message: fmt.Sprintf("logged in%s: enrolled as %s, overlay address %s", who, id.Node.Name, id.Node.Address)})
	return id, nil
}

// Login implements ctl.Backend: log out if enrolled, then log in (at the
// coordinator given, or the last one logged in to) and bring the tunnel up.
func (e *Engine) Login(ctx context.Context, req ctl.UpRequest, progress func(ctl.Progress)) error {
	e.upMu.Lock()
	defer e.upMu.Unlock()
	if req.Token != "" {
		return errors.New("warren login takes no token: use warren up --token-file FILE")
	}
	if req.Coordinator == "" {
		p, err := e.loadPrefs()
		if err != nil {
			return err
		}
		if p.LoginURL == "" {
			return errors.New("no coordinator to log in to: give it once with warren login --coordinator URL")
		}
		req.Coordinator, req.Pin = p.LoginURL, p.LoginPin
	}
	if err := wire.ValidateCoordinatorURL(req.Coordinator); err != nil {
		return err
	}
	if _, err := e.dir.LoadIdentity(); err == nil {
		res, err := e.logout(ctx)
		if err != nil {
			return err
		}
		progress(ctl.Progress{Message: res.line()})
	}
	return e.up(ctx, req, progress)
}

// Logout implements ctl.Backend.
func (e *Engine) Logout(ctx context.Context) (ctl.LogoutResult, error) {
	e.upMu.Lock()
	defer e.upMu.Unlock()
	res, err := e.logout(ctx)
	return ctl.LogoutResult(res), err
}

// logoutResult is ctl.LogoutResult with its line for progress.
type logoutResult ctl.LogoutResult

func (r logoutResult) line() string {
	if r.Removed {
		return "logged out: node " + r.Node + " removed at the coordinator"
	}
	return "logged out here, but the coordinator was not told (" + r.Error + "): an admin should run warren nodes rm " + r.Node
}

// logout takes the tunnel down, stops the SSH certificates' renewal, asks
// the coordinator to remove the node (best effort) and forgets the
// identity, the netmap and the certificates' registrations. Call with
// upMu held.
func (e *Engine) logout(ctx context.Context) (logoutResult, error) {
	id, err := e.dir.LoadIdentity()
	if errors.Is(err, nodestate.ErrNoIdentity) {
		return logoutResult{}, errors.New("this machine is not enrolled: nothing to log out")
	}
	if err != nil {
		return logoutResult{}, err
	}
	if err := e.editPrefs(func(p *prefs) { p.WantUp = false }); err != nil {
		e.log.Warn("saving prefs", "err", err)
	}
	e.stop()
	res := logoutResult{Node: id.Node.Name, Removed: true}
	if err := e.tellLogout(ctx, id); err != nil {
		res.Removed, res.Error = false, err.Error()
		e.log.Warn("the coordinator was not told of the logout", "err", err)
	}
	if err := e.forgetSSHCerts(); err != nil {
		return res, err
	}
	if err := e.dir.Forget(); err != nil {
		return res, fmt.Errorf("forgetting the identity: %w", err)
	}
	e.mu.Lock()
	e.denials, e.coordErr = nil, ""
	e.mu.Unlock()
	e.log.Info("logged out", "node", id.Node.Name, "removed", res.Removed)
	return res, nil
}

// tellLogout asks the coordinator to remove the node. A credential it no
// longer accepts means the node is gone already.
func (e *Engine) tellLogout(ctx context.Context, id *nodestate.Identity) error {
	api, err := e.cfg.NewNodeAPI(id)
	if err != nil {
		return err
	}
	defer api.Close()
	ctx, cancel := context.WithTimeout(ctx, logoutTimeout)
	defer cancel()
	err = api.Logout(ctx)
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.CodeUnauthorized {
		return nil
	}
	return err
}
