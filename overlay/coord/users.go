package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// Users lists every user, sorted by e-mail address: the people who logged
// in by single sign-on, with their provider groups, and the users only
// tokens or nodes name. Each carries the names of their nodes.
func (c *Coordinator) Users() []wire.User { return c.snap.Load().wireUsers() }

func (s *snapshot) wireUsers() []wire.User {
	nodes := map[string][]string{}
	for _, n := range s.nodes { // sorted by name
		if n.User != "" {
			nodes[n.User] = append(nodes[n.User], n.Name)
		}
	}
	sso := make(map[string]store.User, len(s.users))
	for _, u := range s.users {
		sso[u.Email] = u
	}
	names := s.userNames()
	out := make([]wire.User, 0, len(names))
	for _, email := range names {
		wu := wire.User{Email: email, Source: wire.UserSourceToken, Nodes: nodes[email]}
		if u, ok := sso[email]; ok {
			last, validated := u.LastLogin, u.ValidatedAt
			wu.Source = wire.UserSourceSSO
			wu.Groups = slices.Clone(u.Groups)
			wu.LastLogin, wu.ValidatedAt = &last, &validated
			wu.Disabled, wu.Reason = u.Disabled, u.Reason
		}
		out = append(out, wu)
	}
	return out
}

// RemoveUser removes the user with this e-mail address and every node of
// theirs at once (their credentials stop working, their control streams
// end and they leave every netmap), and drops them from the provider
// groups. Tokens naming the user stay until revoked. An unknown user, or
// one only tokens name with no node left, is refused and nothing changes.
func (c *Coordinator) RemoveUser(ctx context.Context, email string) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if err := wire.ValidateUser(email); err != nil {
		return invalid(err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	if _, ok := slices.BinarySearch(s.userNames(), email); !ok {
		return errorf(wire.CodeNotFound, "no user %q (see: warren users ls)", email)
	}
	version, err := c.store.DeleteUser(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(wire.CodeNotFound, "user %q has no node and never logged in; only tokens name them (revoke those with: warren token revoke ID)", email)
	}
	if err != nil {
		return fmt.Errorf("removing user: %w", err)
	}
	nodes := slices.DeleteFunc(slices.Clone(s.nodes), func(n store.Node) bool { return n.User == email })
	users := slices.DeleteFunc(slices.Clone(s.users), func(u store.User) bool { return u.Email == email })
	next, err := s.withUsers(version, nodes, users)
	if err != nil {
		return err
	}
	c.publish(next)
	c.log.Info("user removed", "user", email, "nodes", len(s.nodes)-len(nodes))
	return nil
}

// providerGroups maps each provider group to the users in it, sorted;
// a disabled user is in none.
func (s *snapshot) providerGroups() map[string][]string {
	var groups map[string][]string
	for _, u := range s.users { // sorted by Email
		if u.Disabled {
			continue
		}
		for _, g := range u.Groups {
			if groups == nil {
				groups = map[string][]string{}
			}
			groups[g] = append(groups[g], u.Email)
		}
	}
	return groups
}

// userAt returns the index of the user with this e-mail address in
// s.users.
func (s *snapshot) userAt(email string) (int, bool) {
	return slices.BinarySearchFunc(s.users, email, func(u store.User, e string) int { return strings.Compare(u.Email, e) })
}

// putUser returns users (sorted by Email) with u inserted or replacing
// the user with its Email; users itself is left alone.
func putUser(users []store.User, u store.User) []store.User {
	i, ok := slices.BinarySearchFunc(users, u.Email, func(x store.User, e string) int { return strings.Compare(x.Email, e) })
	if ok {
		return replaceAt(users, i, u)
	}
	return insertSorted(users, u, func(a, b store.User) int { return strings.Compare(a.Email, b.Email) })
}

// deleteLoginNodes returns nodes without the ones the user enrolled by
// logging in (no token), as store.DropLoginNodes removes them.
func deleteLoginNodes(nodes []store.Node, email string) []store.Node {
	return slices.DeleteFunc(slices.Clone(nodes), func(n store.Node) bool { return n.User == email && n.TokenID == "" })
}
