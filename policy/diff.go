package policy

import (
	"slices"

	"github.com/warrennet/warren/overlay/wire"
)

// AllowAllDest is the destination Diff shows for the allow-all policy:
// everything routed.
const AllowAllDest = "*"

// Diff says, per user, which destinations a move from old to next gains
// and loses, for `policy set --dry-run`, and which SSH principals
// (SSHPrincipals) the user's certificates gain and lose. A nil policy is
// allow-all, shown as the one destination "*" and no principals.
// Destinations are grant texts ("192.168.0.0/24:22/tcp",
// "192.168.0.10:443/tcp"), in grant order; principals are sorted.
// It reports on users and on every user either policy names; pass "" to
// report on clients without a user too. Users without a change are left
// out; the rest are sorted.
func Diff(old, next *Compiled, users []string) []wire.PolicyChange {
	all := map[string]bool{}
	for _, u := range users {
		all[u] = true
	}
	for _, c := range []*Compiled{old, next} {
		if c != nil {
			for _, u := range c.users {
				all[u] = true
			}
		}
	}
	var out []wire.PolicyChange
	for _, u := range sortedKeys(all) {
		before, after := dests(old, u), dests(next, u)
		ch := wire.PolicyChange{User: u, Gained: minus(after, before), Lost: minus(before, after)}
		sshBefore, sshAfter := old.SSHPrincipals(u), next.SSHPrincipals(u)
		ch.SSHGained, ch.SSHLost = minus(sshAfter, sshBefore), minus(sshBefore, sshAfter)
		if len(ch.Gained) > 0 || len(ch.Lost) > 0 || len(ch.SSHGained) > 0 || len(ch.SSHLost) > 0 {
			out = append(out, ch)
		}
	}
	return out
}

// dests returns the destinations c lets user reach, as texts.
func dests(c *Compiled, user string) []string {
	if c == nil {
		return []string{AllowAllDest}
	}
	var out []string
	for _, g := range c.Grants(user) {
		out = append(out, grantText(g))
	}
	return slices.Compact(out)
}

// minus returns the elements of a that b lacks, in a's order.
func minus(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}
