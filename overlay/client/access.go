package client

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/wire"
)

// The access policy as the laptop knows it: its netmap carries its own
// grants and the text of the rules they name. The connectors enforce it;
// the laptop only explains it (warren why).

// allowAllReason is what the laptop says when no policy document is set.
const allowAllReason = "allowed: no access policy is set (allow-all)"

// policyMode names the mode of p.
func policyMode(p wire.NetMapPolicy) wire.PolicyMode {
	if p.Enforced {
		return wire.PolicyEnforced
	}
	return wire.PolicyAllowAll
}

// who names the node in a decision: its user, or its name if it has none.
func who(self wire.Node) string {
	if self.User != "" {
		return self.User
	}
	return self.Name
}

// flowString writes a flow's destination as policies do:
// "192.168.0.10:8080/tcp", "[2001:db8::1]:22/udp", "192.168.0.10/icmp".
func flowString(dst netip.Addr, port uint16, proto wire.Proto) string {
	if proto == wire.ProtoICMP {
		return dst.String() + "/icmp"
	}
	return netip.AddrPortFrom(dst, port).String() + "/" + string(proto)
}

// decide is the policy's decision for a flow of self to dst:port over
// proto (tcp, udp or icmp): allowed by the lowest-numbered rule whose
// grant covers it, or denied. Under allow-all everything is allowed.
func decide(p wire.NetMapPolicy, self wire.Node, dst netip.Addr, port uint16, proto wire.Proto) wire.PolicyDecision {
	dst = dst.Unmap()
	if proto == wire.ProtoICMP {
		port = 0
	}
	d := wire.PolicyDecision{User: self.User, Dest: netip.AddrPortFrom(dst, port), Proto: proto}
	if !p.Enforced {
		d.Allow, d.Reason = true, allowAllReason
		return d
	}
	for _, g := range p.Grants {
		if g.Allows(dst, port, proto) && (d.Rule == 0 || g.Rule < d.Rule) {
			d.Allow, d.Rule = true, g.Rule
		}
	}
	if !d.Allow {
		d.Reason = fmt.Sprintf("denied by policy: no rule lets %s reach %s", who(self), flowString(dst, port, proto))
		return d
	}
	d.RuleText = ruleText(p, d.Rule)
	d.Reason = "allowed by " + wire.RuleName(d.Rule)
	if d.RuleText != "" {
		d.Reason += ": " + d.RuleText
	}
	return d
}

// ruleText finds the text of rule i in p, if the netmap carries it.
func ruleText(p wire.NetMapPolicy, i int) string {
	for _, r := range p.Rules {
		if r.Index == i {
			return r.Text
		}
	}
	return ""
}

// reachable says in one line what the policy lets self reach at dst,
// when the question names no port.
func reachable(p wire.NetMapPolicy, self wire.Node, dst netip.Addr) string {
	dst = dst.Unmap()
	if !p.Enforced {
		return allowAllReason
	}
	var gs []wire.Grant
	for _, g := range p.Grants {
		if g.Prefix.Contains(dst) {
			gs = append(gs, g)
		}
	}
	if len(gs) == 0 {
		return fmt.Sprintf("denied by policy: no rule lets %s reach %s on any port", who(self), dst)
	}
	slices.SortFunc(gs, func(a, b wire.Grant) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Ports.First, b.Ports.First), cmp.Compare(a.Ports.Last, b.Ports.Last))
	})
	var parts []string
	for _, g := range gs {
		s := fmt.Sprintf("%s (%s)", grantPorts(g), wire.RuleName(g.Rule))
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return fmt.Sprintf("the access policy lets %s reach %s only on: %s", who(self), dst, strings.Join(parts, ", "))
}

// grantPorts writes a grant's ports and protocol: "22/tcp", "*/udp",
// "icmp".
func grantPorts(g wire.Grant) string {
	if g.Proto == wire.ProtoICMP {
		return "icmp"
	}
	return g.Ports.String() + "/" + string(g.Proto)
}
