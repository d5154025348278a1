package coord

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// Enroll registers a node with the token whose secret is tokenSecret. The
// node chose its key pair and sends only the public key; it gets an
// overlay address and the credential for its control stream.
func (c *Coordinator) Enroll(ctx context.Context, tokenSecret string, req wire.EnrollRequest) (wire.EnrollResponse, error) {
	if err := req.Validate(); err != nil {
		return wire.EnrollResponse{}, invalid(err)
	}
	hash := hashSecret(tokenSecret)
	var tok *store.Token
	if i, ok := c.snap.Load().tokenByHsh[hash]; ok {
		t := c.snap.Load().tokens[i]
		tok = &t
	}
	if tok != nil && tok.Role == wire.RoleAdmin {
		return wire.EnrollResponse{}, errAdminEnroll()
	}
	cred, err := c.newSecret()
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	id, err := c.newID(8)
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	p := store.EnrollParams{TokenHash: hash, NodeID: id, PublicKey: req.PublicKey, CredHash: hashSecret(cred), Now: c.now().UTC()}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n, version, err := c.store.Enroll(ctx, p)
	if err != nil {
		return wire.EnrollResponse{}, c.enrollError(err, tok)
	}
	s := c.snap.Load()
	tokens := s.tokens
	if i, ok := s.tokenByHsh[hash]; ok {
		t := s.tokens[i]
		t.Uses++
		tokens = replaceAt(s.tokens, i, t)
	}
	next, err := s.with(version, tokens, insertSorted(s.nodes, n, compareNodes), nil, nil, nil)
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	c.publish(next)
	c.log.Info("node enrolled", "node", n.Name, "role", n.Role, "user", n.User, "address", n.Address, "token", n.TokenID)
	return wire.EnrollResponse{Node: n.Node, Credential: cred}, nil
}

func (c *Coordinator) enrollError(err error, tok *store.Token) error {
	if e := tokenError(err, tok); e != nil {
		return e
	}
	switch {
	case errors.Is(err, store.ErrNameTaken):
		name := "this name"
		if tok != nil {
			name = fmt.Sprintf("%q", tok.Name)
		}
		return errorf(wire.CodeConflict, "a node named %s is already enrolled; remove it first with: warren nodes rm NAME", name)
	case errors.Is(err, store.ErrExists):
		return errorf(wire.CodeConflict, "this node's public key is already enrolled; use a fresh state directory")
	case errors.Is(err, store.ErrAddressSpace):
		return errorf(wire.CodeConflict, "the overlay address space is exhausted")
	}
	return fmt.Errorf("enrolling node: %w", err)
}

// AuthenticateNode returns the node whose control-stream credential this is.
func (c *Coordinator) AuthenticateNode(credential string) (wire.Node, error) {
	s := c.snap.Load()
	i, ok := s.byCred[hashSecret(credential)]
	if !ok {
		return wire.Node{}, errorf(wire.CodeUnauthorized, "this node has been removed by an admin or never enrolled; enroll it again with a new token")
	}
	return s.nodes[i].Node, nil
}

// CheckEnrollToken tells whether the token whose secret is tokenSecret
// could enroll a node now, without consuming it, so that the API can
// refuse an unknown, used, expired or revoked token before it reads the
// request body. Enroll checks again, atomically, in the store.
func (c *Coordinator) CheckEnrollToken(tokenSecret string) error {
	s := c.snap.Load()
	i, ok := s.tokenByHsh[hashSecret(tokenSecret)]
	if !ok {
		return tokenError(store.ErrNotFound, nil)
	}
	t := s.tokens[i]
	if t.Role == wire.RoleAdmin {
		return errAdminEnroll()
	}
	switch t.State(c.now()) {
	case wire.TokenRevoked:
		return tokenError(store.ErrTokenRevoked, &t)
	case wire.TokenExpired:
		return tokenError(store.ErrTokenExpired, &t)
	case wire.TokenUsed:
		return tokenError(store.ErrTokenUsed, &t)
	}
	return nil
}

func errAdminEnroll() error {
	return errorf(wire.CodeInvalid, "an admin token cannot enroll a node; create one with: warren token create --role client|connector --name NAME")
}
