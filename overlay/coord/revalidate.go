package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/coord/store"
)

// DefaultRevalidateInterval is how often the people with nodes are
// checked with the identity provider.
const DefaultRevalidateInterval = 12 * time.Hour

// refreshTimeout bounds one question to the provider.
const refreshTimeout = 30 * time.Second

// RevalidateUsers asks the identity provider about every person who logged
// in by single sign-on and has nodes. A person the provider still accepts
// gets their groups (and so their grants) updated; one it refuses
// (sso.ErrRevoked) is disabled, with the reason, and every node of theirs
// is removed at once; when the provider cannot be asked, nothing changes
// and the next round asks again, so an outage cuts nobody off. A person
// the provider gave no refresh token keeps their login nodes for one
// interval after logging in, then loses them (they log in again). Run
// calls it every interval; it returns the first store error, after trying
// everyone.
func (c *Coordinator) RevalidateUsers(ctx context.Context) error {
	if c.idp == nil {
		return nil
	}
	s := c.snap.Load()
	withNodes, withLogins := map[string]bool{}, map[string]bool{}
	for _, n := range s.nodes {
		withNodes[n.User] = true
		if n.TokenID == "" {
			withLogins[n.User] = true
		}
	}
	var errs []error
	for _, u := range s.users {
		if u.Disabled || !withNodes[u.Email] {
			continue
		}
		if u.RefreshToken == "" && !withLogins[u.Email] {
			continue // nothing a login gave them is left to take away
		}
		if err := c.revalidate1(ctx, u); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// revalidate1 checks one person; u is as the snapshot had them when the
// round began.
func (c *Coordinator) revalidate1(ctx context.Context, u store.User) error {
	if u.RefreshToken == "" {
		if c.now().Before(u.LastLogin.Add(c.revalidate)) {
			return nil
		}
		return c.updateUser(ctx, u, u, store.DropLoginNodes, "login older than the revalidation interval and no refresh token: their login nodes are removed until they log in again")
	}
	rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	id, err := c.idp.Refresh(rctx, u.RefreshToken)
	cancel()
	switch {
	case errors.Is(err, sso.ErrRevoked):
		next := u
		next.Disabled, next.Reason, next.Groups = true, err.Error(), nil
		next.ValidatedAt = c.now().UTC()
		next.RefreshToken = ""
		return c.updateUser(ctx, u, next, store.DropAllNodes, "the identity provider refused the user: disabled, every node removed")
	case err != nil:
		c.log.Warn("revalidating user: the identity provider could not be asked; trying again next round", "user", u.Email, "err", err)
		return nil
	}
	next := u
	next.Groups = id.Groups
	next.ValidatedAt = c.now().UTC()
	if id.RefreshToken != "" {
		next.RefreshToken = id.RefreshToken
	}
	return c.updateUser(ctx, u, next, store.KeepNodes, "")
}

// updateUser stores next in place of was, unless the user changed since
// was was read (they logged in again, or were removed), and drops their
// nodes as drop says. A non-empty note is logged.
func (c *Coordinator) updateUser(ctx context.Context, was, next store.User, drop store.DropNodes, note string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, ok := s.userAt(was.Email)
	if !ok || !sameUser(s.users[i], was) {
		return nil
	}
	version, err := c.store.UpdateUser(ctx, next, drop)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revalidating %s: %w", was.Email, err)
	}
	var nodes []store.Node
	switch drop {
	case store.DropLoginNodes:
		nodes = deleteLoginNodes(s.nodes, was.Email)
	case store.DropAllNodes:
		nodes = slices.DeleteFunc(slices.Clone(s.nodes), func(n store.Node) bool { return n.User == was.Email })
	}
	next2, err := s.withUsers(version, nodes, replaceAt(s.users, i, next))
	if err != nil {
		return err
	}
	c.publish(next2)
	if note != "" {
		c.log.Info("user revalidated: "+note, "user", was.Email, "nodes_removed", len(s.nodes)-len(next2.nodes))
	} else {
		c.log.Debug("user revalidated", "user", was.Email, "groups", next.Groups)
	}
	return nil
}

// sameUser reports whether a and b are the same stored record.
func sameUser(a, b store.User) bool {
	return a.Email == b.Email && a.Subject == b.Subject && a.RefreshToken == b.RefreshToken &&
		a.LastLogin.Equal(b.LastLogin) && a.Disabled == b.Disabled
}
