package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
)

// Enroll returns the node's identity from dir, enrolling with token first
// if the node has none. A node that is already enrolled ignores token.
// role is the role the caller runs as; a token for another role is
// refused before it is used up.
func Enroll(ctx context.Context, dir *nodestate.Dir, token string, role wire.Role, hostname string) (*nodestate.Identity, error) {
	id, err := dir.LoadIdentity()
	if err == nil {
		if id.Node.Role != role {
			return nil, fmt.Errorf("the state in %s belongs to a %s, not a %s; use another --state directory", dir.Path(), id.Node.Role, role)
		}
		return id, nil
	}
	if !errors.Is(err, nodestate.ErrNoIdentity) {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("this %s is not enrolled yet: pass --token-file FILE or set WARREN_TOKEN (an admin creates one with: warren token create --role %s --name NAME)", role, role)
	}
	tok, err := wire.ParseToken(token)
	if err != nil {
		return nil, err
	}
	priv, err := nodestate.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	resp, err := coordclient.Enroll(ctx, tok, wire.EnrollRequest{PublicKey: priv.PublicKey(), Hostname: hostname})
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	if resp.Node.Role != role {
		// The token is spent, but a node of the wrong role must not run.
		return nil, fmt.Errorf("the token enrolled a %s named %q, but this is a %s; remove it with warren nodes rm %s and use a %s token", resp.Node.Role, resp.Node.Name, role, resp.Node.Name, role)
	}
	id = &nodestate.Identity{PrivateKey: priv, Node: resp.Node, Credential: resp.Credential, URL: tok.URL, Pin: tok.Pin}
	if err := dir.SaveIdentity(id); err != nil {
		return nil, fmt.Errorf("enrolled as %s but could not save the identity (the token is spent): %w", resp.Node.Name, err)
	}
	return id, nil
}

// Config configures Run.
type Config struct {
	Dir      *nodestate.Dir
	Identity *nodestate.Identity
	// Apply makes the netmap the role's configuration; see
	// coordclient.SessionConfig.Apply for its contract.
	Apply func(ctx context.Context, nm *wire.NetMap) error
	// OnState reports the control stream's state; optional.
	OnState func(connected bool, err error)
	// OnDenial receives the denials the coordinator reports for this
	// node; optional. See coordclient.SessionConfig.OnDenial.
	OnDenial func(wire.FlowRecord)
	Logger   *slog.Logger
	// HeartbeatInterval and HeartbeatTimeout: zero means the defaults.
	HeartbeatInterval, HeartbeatTimeout time.Duration
	Backoff                             coordclient.Backoff
	// Wake cuts a wait to reconnect short; see coordclient.SessionConfig.
	Wake <-chan struct{}
}

// Run first applies the netmap saved on disk, if any, then holds the
// control session until ctx ends or the node is revoked
// (coordclient.ErrRevoked), saving each netmap before applying it.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	saved, err := cfg.Dir.LoadNetMap()
	switch {
	case err == nil:
		if err := cfg.Apply(ctx, saved); err != nil {
			log.Warn("applying the saved netmap", "version", saved.Version, "err", err)
		} else {
			log.Info("applied the saved netmap while connecting", "version", saved.Version)
		}
	case !errors.Is(err, nodestate.ErrNoNetMap):
		log.Warn("reading the saved netmap", "err", err)
	}
	s, err := coordclient.NewSession(coordclient.SessionConfig{
		URL:        cfg.Identity.URL,
		Pin:        cfg.Identity.Pin,
		Credential: cfg.Identity.Credential,
		Apply: func(ctx context.Context, nm *wire.NetMap) error {
			if err := cfg.Dir.SaveNetMap(nm); err != nil {
				log.Warn("saving the netmap", "version", nm.Version, "err", err)
			}
			return cfg.Apply(ctx, nm)
		},
		OnState:           cfg.OnState,
		OnDenial:          cfg.OnDenial,
		Logger:            log,
		HeartbeatInterval: cfg.HeartbeatInterval,
		HeartbeatTimeout:  cfg.HeartbeatTimeout,
		Backoff:           cfg.Backoff,
		Wake:              cfg.Wake,
	})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
