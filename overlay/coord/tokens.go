package coord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// CreateToken creates a client or connector token and returns it with its
// opaque string, the only time the secret is ever seen. A client token may
// name the user whose devices it enrolls; every node it enrolls belongs to
// that user.
func (c *Coordinator) CreateToken(ctx context.Context, req wire.CreateTokenRequest) (wire.CreateTokenResponse, error) {
	if err := req.Validate(); err != nil {
		return wire.CreateTokenResponse{}, invalid(err)
	}
	return c.createToken(ctx, req.Role, req.Name, req.User, req.Reusable, time.Duration(req.ExpiresIn))
}

// CreateAdminToken creates a reusable, non-expiring admin token.
func (c *Coordinator) CreateAdminToken(ctx context.Context) (wire.CreateTokenResponse, error) {
	return c.createToken(ctx, wire.RoleAdmin, "admin", "", true, 0)
}

func (c *Coordinator) createToken(ctx context.Context, role wire.Role, name, user string, reusable bool, expiresIn time.Duration) (wire.CreateTokenResponse, error) {
	secret, err := c.newSecret()
	if err != nil {
		return wire.CreateTokenResponse{}, err
	}
	id, err := c.newID(6)
	if err != nil {
		return wire.CreateTokenResponse{}, err
	}
	now := c.now().UTC()
	info := wire.TokenInfo{ID: id, Name: name, Role: role, Reusable: reusable, CreatedAt: now, User: user}
	if expiresIn > 0 {
		exp := now.Add(expiresIn)
		info.ExpiresAt = &exp
	}
	t := store.Token{TokenInfo: info, Hash: hashSecret(secret)}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.store.CreateToken(ctx, t); err != nil {
		return wire.CreateTokenResponse{}, fmt.Errorf("storing token: %w", err)
	}
	s := c.snap.Load()
	next, err := s.with(s.version, insertSorted(s.tokens, t, compareTokens), nil, nil, nil, nil)
	if err != nil {
		return wire.CreateTokenResponse{}, err
	}
	c.publish(next)
	tok := wire.Token{URL: c.url, Pin: c.pin, Secret: secret}
	c.log.Info("token created", "id", id, "name", name, "role", role, "reusable", reusable, "user", user)
	return wire.CreateTokenResponse{Token: tok.String(), Info: info}, nil
}

// Tokens lists every token, oldest first.
func (c *Coordinator) Tokens() []wire.TokenInfo {
	s := c.snap.Load()
	out := make([]wire.TokenInfo, len(s.tokens))
	for i, t := range s.tokens {
		out[i] = t.TokenInfo
	}
	return out
}

// RevokeToken revokes the token with this ID. Nodes it enrolled stay.
func (c *Coordinator) RevokeToken(ctx context.Context, id string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i := -1
	for j, t := range s.tokens {
		if t.ID == id {
			i = j
		}
	}
	if i < 0 {
		return errorf(wire.CodeNotFound, "no token with ID %q (see: warren token ls)", id)
	}
	if err := c.store.RevokeToken(ctx, id); err != nil {
		return fmt.Errorf("revoking token: %w", err)
	}
	t := s.tokens[i]
	t.Revoked = true
	next, err := s.with(s.version, replaceAt(s.tokens, i, t), nil, nil, nil, nil)
	if err != nil {
		return err
	}
	c.publish(next)
	c.log.Info("token revoked", "id", id, "name", t.Name)
	return nil
}

// AuthenticateAdmin checks an admin secret.
func (c *Coordinator) AuthenticateAdmin(secret string) error {
	s := c.snap.Load()
	i, ok := s.tokenByHsh[hashSecret(secret)]
	if !ok || s.tokens[i].Role != wire.RoleAdmin || s.tokens[i].State(c.now()) != wire.TokenActive {
		return errorf(wire.CodeUnauthorized, "the coordinator refused the admin credential (wrong, revoked or not an admin token)")
	}
	return nil
}

// tokenError turns the store's refusal of a token into a message for the
// person who holds it.
func tokenError(err error, t *store.Token) error {
	name := ""
	if t != nil {
		name = fmt.Sprintf(" %q", t.Name)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(wire.CodeUnauthorized, "the coordinator does not know this token; ask your admin for a new one")
	case errors.Is(err, store.ErrTokenUsed):
		return errorf(wire.CodeTokenUsed, "token%s has already been used; single-use tokens enroll one node (create one with --reusable for more)", name)
	case errors.Is(err, store.ErrTokenExpired):
		return errorf(wire.CodeTokenExpired, "token%s has expired; ask your admin for a new one", name)
	case errors.Is(err, store.ErrTokenRevoked):
		return errorf(wire.CodeTokenRevoked, "token%s has been revoked; ask your admin for a new one", name)
	}
	return nil
}
