package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/wire"
)

// source is one entry of a rule's from.
type source struct {
	all   bool   // "*"
	group string // "group:NAME"
	user  string // "user:EMAIL"
}

func parseSource(s string) (source, error) {
	if s == "*" {
		return source{all: true}, nil
	}
	if name, ok := strings.CutPrefix(s, "group:"); ok {
		if name == "" {
			return source{}, fmt.Errorf("%q names no group", s)
		}
		return source{group: name}, nil
	}
	if u, ok := strings.CutPrefix(s, "user:"); ok {
		if err := wire.ValidateUser(u); err != nil {
			return source{}, err
		}
		return source{user: u}, nil
	}
	return source{}, fmt.Errorf("%q is not group:NAME, user:EMAIL or *", s)
}

// parseRuleProto reads a rule's proto, tcp when empty.
func parseRuleProto(s string) (wire.Proto, error) { return wire.ParseProto(s) }

// groupNames returns the document's group names in the order they were
// written (by name when built in code).
func (d *Document) groupNames() []string {
	names := make([]string, 0, len(d.Groups))
	for name := range d.Groups {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(d.line(groupPath(a)), d.line(groupPath(b))), strings.Compare(a, b))
	})
	return names
}

// checkFrom checks the from entries of the (ssh) rule at path. Whether a
// group exists is Compile's question: groups come from the document and
// from single sign-on.
func (d *Document) checkFrom(path string, from []string) error {
	for j, f := range from {
		if _, err := parseSource(f); err != nil {
			return d.at(itemPath(path, "from", j), "%v", err)
		}
	}
	return nil
}

// check validates what does not depend on the coordinator's state, in
// document order, and returns the first problem.
func (d *Document) check() error {
	for _, name := range d.groupNames() {
		if err := wire.ValidateName(name); err != nil {
			return d.at(groupPath(name), "group %q: a group name may hold only lowercase letters, digits and inner hyphens", name)
		}
		for i, u := range d.Groups[name] {
			if err := wire.ValidateUser(u); err != nil {
				return d.at(memberPath(name, i), "group %q: %v", name, err)
			}
		}
	}
	if n := len(d.Rules); n >= wire.SSHRuleBase {
		return d.at("rules", "the document has %d rules, more than %d", n, wire.SSHRuleBase-1)
	}
	for i, r := range d.Rules {
		path := rulePath(i)
		if len(r.From) == 0 {
			return d.at(path, "the rule has no from: name group:NAME, user:EMAIL or *")
		}
		if err := d.checkFrom(path, r.From); err != nil {
			return err
		}
		proto, err := parseRuleProto(r.Proto)
		if err != nil {
			return d.at(path+".proto", "%v", err)
		}
		if len(r.To) == 0 {
			return d.at(path, "the rule has no to: name CIDR:PORTS, IP:PORTS or HOST:PORTS")
		}
		for j, s := range r.To {
			t, err := parseTarget(s)
			if err != nil {
				return d.at(itemPath(path, "to", j), "%v", err)
			}
			if proto == wire.ProtoICMP && t.ports != wire.AllPorts {
				host, _, _ := cutLast(s, ":")
				return d.at(itemPath(path, "to", j), "destination %q: icmp has no ports: write %s:*", s, printable(host))
			}
		}
	}
	for i, r := range d.SSH {
		path := sshPath(i)
		if len(r.From) == 0 {
			return d.at(path, "the ssh rule has no from: name group:NAME, user:EMAIL or *")
		}
		if err := d.checkFrom(path, r.From); err != nil {
			return err
		}
		if len(r.To) == 0 {
			return d.at(path, "the ssh rule has no to: name CIDR, IP or HOST")
		}
		for j, s := range r.To {
			if _, err := parseSSHTarget(s); err != nil {
				return d.at(itemPath(path, "to", j), "%v", err)
			}
		}
		if len(r.As) == 0 {
			return d.at(path, "the ssh rule has no as: name the UNIX users it lets from log in as")
		}
		for j, p := range r.As {
			if err := wire.ValidatePrincipal(p); err != nil {
				return d.at(itemPath(path, "as", j), "as: %v", err)
			}
			if slices.Contains(r.As[:j], p) {
				return d.at(itemPath(path, "as", j), "as: %q appears twice", p)
			}
		}
	}
	for i, t := range d.Tests {
		path := testPath(i)
		if err := wire.ValidateUser(t.User); err != nil {
			return d.at(path+".user", "test: %v", err)
		}
		if len(t.Allow) == 0 && len(t.Deny) == 0 && len(t.SSHAs) == 0 && len(t.SSHDenyAs) == 0 {
			return d.at(path, "the test checks nothing: give allow or deny destinations, or ssh_as or ssh_deny_as principals")
		}
		for _, kind := range []string{"ssh_as", "ssh_deny_as"} {
			items := t.SSHAs
			if kind == "ssh_deny_as" {
				items = t.SSHDenyAs
			}
			for j, p := range items {
				if err := wire.ValidatePrincipal(p); err != nil {
					return d.at(itemPath(path, kind, j), "test %s: %v", kind, err)
				}
			}
		}
		for _, kind := range []string{"allow", "deny"} {
			items := t.Allow
			if kind == "deny" {
				items = t.Deny
			}
			for j, s := range items {
				if _, err := ParseDest(s); err != nil {
					return d.at(itemPath(path, kind, j), "test destination %v", err)
				}
			}
		}
	}
	return nil
}
