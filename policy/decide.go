package policy

import (
	"net/netip"
	"slices"

	"github.com/warrennet/warren/overlay/wire"
)

// Decide says whether user (empty for a client without a user) may reach
// dst:port over proto (tcp, udp or icmp; the port does not matter for
// icmp), and why. A flow passes when any rule allows it; the decision
// names the lowest-numbered such rule. An address with a zone matches no
// rule; an IPv4-mapped IPv6 address is IPv6 here and never matches an IPv4
// destination (unmap it first). A nil c allows everything.
func (c *Compiled) Decide(user string, dst netip.Addr, port uint16, proto wire.Proto) wire.PolicyDecision {
	d := wire.PolicyDecision{User: user, Dest: netip.AddrPortFrom(dst, port), Proto: proto}
	if c == nil {
		d.Allow = true
		d.Reason = "allowed: no policy is set, so every client reaches every routed destination"
		return d
	}
	for i := range c.rules {
		r := &c.rules[i]
		if !r.appliesTo(user) {
			continue
		}
		for _, t := range r.targets {
			if t.prefix.Contains(dst) && allows(t.ports, r.proto, port, proto) {
				d.Allow, d.Rule, d.RuleText, d.Reason = true, r.index, r.text, r.reason
				return d
			}
		}
	}
	d.Reason = "denied by policy: no rule lets " + who(user) + " reach " + flowText(dst, port, proto)
	return d
}

// allows reports whether a grant's ports and protocol let a flow to port
// over proto through (the address is checked apart). It is
// wire.Grant.Allows without the prefix.
func allows(ports wire.PortRange, gp wire.Proto, port uint16, proto wire.Proto) bool {
	return gp.Matches(proto) && (proto == wire.ProtoICMP || ports.Contains(port))
}

func who(user string) string {
	if user == "" {
		return "a client without a user"
	}
	return user
}

// Grants returns what user may reach: one grant per rule destination that
// applies to the user, sorted by prefix, ports, protocol and rule; of
// grants with the same prefix, ports and protocol only the lowest rule's
// is kept. Host names are resolved. A nil c returns nil (allow-all has no
// grants). The caller owns the slice.
func (c *Compiled) Grants(user string) []wire.Grant {
	if c == nil {
		return nil
	}
	if gs, ok := c.grants[user]; ok {
		return slices.Clone(gs)
	}
	return slices.Clone(c.others)
}

// GrantsWithin returns user's grants cut down to the prefixes served (a
// connector's): a grant for 10.0.0.0/8 with 10.1.0.0/16 served becomes
// 10.1.0.0/16; one for 10.1.2.3/32 stays as it is. The result is sorted
// and deduplicated as Grants's is, so a Matcher over it decides every flow
// to a served address as Decide does, and denies every other flow.
func (c *Compiled) GrantsWithin(user string, served []netip.Prefix) []wire.Grant {
	if c == nil {
		return nil
	}
	gs := c.grants[user]
	if _, ok := c.grants[user]; !ok {
		gs = c.others
	}
	var out []wire.Grant
	for _, g := range gs {
		for _, s := range served {
			if p, ok := intersect(g.Prefix, s); ok {
				g := g
				g.Prefix = p
				out = append(out, g)
			}
		}
	}
	return normalizeGrants(out)
}

// intersect returns the addresses a and b share, as a prefix: the longer
// of the two when they overlap.
func intersect(a, b netip.Prefix) (netip.Prefix, bool) {
	if !a.IsValid() || !b.IsValid() || !a.Overlaps(b) {
		return netip.Prefix{}, false
	}
	if a.Bits() >= b.Bits() {
		return a.Masked(), true
	}
	return b.Masked(), true
}

// Rules returns the rules that grants name, by index, with their text.
// Indexes that name no rule of c are skipped.
func (c *Compiled) Rules(grants []wire.Grant) []wire.PolicyRule {
	if c == nil {
		return nil
	}
	var idx []int
	for _, g := range grants {
		if c.rule(g.Rule) != nil {
			idx = append(idx, g.Rule)
		}
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	out := make([]wire.PolicyRule, 0, len(idx))
	for _, i := range idx {
		out = append(out, wire.PolicyRule{Index: i, Text: c.rule(i).text})
	}
	return out
}

// RuleText returns the rule with index i (1-based for rules,
// wire.SSHRuleBase+N for ssh rule N) as a person reads it, for instance
// "group:eng → 192.168.0.0/24:22/tcp, production-server:443/tcp" or
// "group:eng → 192.168.0.0/24:22/tcp as deploy, root"; "" when there is
// no such rule.
func (c *Compiled) RuleText(i int) string {
	if c == nil {
		return ""
	}
	if r := c.rule(i); r != nil {
		return r.text
	}
	return ""
}

// SSHPrincipals returns the principals (UNIX users) user may log in as
// with ssh: the as of every ssh rule whose from takes in user, sorted and
// without duplicates; nil for none. They are what user's SSH certificates
// carry; each host's sshd decides which of them it accepts. A nil c
// (allow-all) grants no principals, nor does any policy to a client
// without a user (""). The caller owns the slice.
func (c *Compiled) SSHPrincipals(user string) []string {
	if c == nil || user == "" {
		return nil
	}
	if ps, ok := c.ssh[user]; ok {
		return slices.Clone(ps)
	}
	return slices.Clone(c.sshAll)
}

// NamesHost reports whether a rule or test names the host, and the first
// line that does (0 for a document built in code). A host the policy
// names must not be removed.
func (c *Compiled) NamesHost(name string) (line int, ok bool) {
	if c == nil {
		return 0, false
	}
	line, ok = c.hosts[name]
	return line, ok
}
