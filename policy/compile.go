package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// Env is what a document is compiled against: the coordinator's state.
type Env struct {
	// Users are the users tokens and nodes carry. With Options.Strict a
	// rule or test may name only these and the users the document's
	// groups list.
	Users []string
	// Hosts are the declared hosts (`warren hosts add`); rules and tests
	// may name only these.
	Hosts map[string]netip.Addr
	// Routes are the routed prefixes; a rule destination that overlaps none
	// of them draws a warning.
	Routes []netip.Prefix
	// Groups are the identity provider's groups: group name → the users
	// single sign-on says are in it. group:NAME in a rule matches the
	// members the document lists and these; their users are known users.
	Groups map[string][]string
	// SSO says single sign-on is configured, so a group may have no user
	// yet: a rule naming a group neither the document nor Groups has
	// draws a warning instead of being refused.
	SSO bool
}

// Options change what Compile accepts.
type Options struct {
	// DenyAll accepts a document without rules, which denies everything.
	DenyAll bool
	// Strict refuses users Env does not know, as `policy set` must. The
	// coordinator loads its stored document without it, so a user whose
	// last token and node are gone does not make the policy fail to load.
	Strict bool
}

// Compiled is a document ready to decide flows. It is immutable: any
// number of goroutines may use it at once. A nil *Compiled is the
// allow-all policy (no document): every flow passes.
type Compiled struct {
	rules  []crule                 // rule i+1 of the document
	grants map[string][]wire.Grant // of each user the document names
	others []wire.Grant            // of every other client: the * rules'
	users  []string                // the users the document names, sorted
	hosts  map[string]int          // host name → first line naming it
}

// crule is one compiled rule.
type crule struct {
	line    int
	text    string          // as RuleText returns it
	reason  string          // of the decisions it allows
	all     bool            // from holds *
	users   map[string]bool // from's users, groups expanded
	proto   wire.Proto
	targets []target // hosts resolved
}

func (r *crule) appliesTo(user string) bool { return r.all || r.users[user] }

// Compile checks doc against env and builds the policy it describes. It
// refuses, with the first problem as an *Error (one line, "line N: ..."):
// anything Parse refuses (for a document built in code); a host that is
// not declared; with opt.Strict, a user env does not know and no group
// lists; no rules unless opt.DenyAll; and any failing test, printed with
// the rule that decided it. Warnings, one line each, name rule
// destinations that no routed prefix overlaps and groups with no members.
func Compile(doc *Document, env Env, opt Options) (*Compiled, []string, error) {
	if doc == nil {
		return nil, nil, &Error{Msg: "no document"}
	}
	if err := doc.check(); err != nil {
		return nil, nil, err
	}
	if len(doc.Rules) == 0 && !opt.DenyAll {
		return nil, nil, doc.at("rules", "the document has no rules, so it denies everything: ask for deny-all if that is what you want")
	}
	known := map[string]bool{}
	for _, u := range env.Users {
		known[u] = true
	}
	named := map[string]bool{}
	for _, members := range doc.Groups {
		for _, u := range members {
			known[u], named[u] = true, true
		}
	}
	c := &Compiled{hosts: map[string]int{}}
	var warnings []string
	for i, r := range doc.Rules {
		path := rulePath(i)
		cr := crule{line: doc.line(path), users: map[string]bool{}}
		cr.proto, _ = parseRuleProto(r.Proto) // checked
		for j, f := range r.From {
			src, _ := parseSource(f) // checked
			switch {
			case src.all:
				cr.all = true
			case src.group != "":
				if len(doc.Groups[src.group]) == 0 {
					warnings = append(warnings, doc.at(itemPath(path, "from", j), "group:%s has no members: it lets no one through", src.group).Error())
				}
				for _, u := range doc.Groups[src.group] {
					cr.users[u] = true
				}
			default:
				if opt.Strict && !known[src.user] {
					return nil, nil, doc.at(itemPath(path, "from", j), "unknown user %q: no token or node carries it and no group lists it", src.user)
				}
				cr.users[src.user], named[src.user] = true, true
			}
		}
		texts := make([]string, 0, len(r.To))
		for j, s := range r.To {
			tpath := itemPath(path, "to", j)
			t, _ := parseTarget(s) // checked
			what := s
			if t.host != "" {
				a, err := (Dest{Host: t.host}).Resolve(env.Hosts)
				if err != nil {
					return nil, nil, doc.at(tpath, "destination %q: %v", s, err)
				}
				t.prefix = netip.PrefixFrom(a, a.BitLen())
				what = fmt.Sprintf("%s (%v)", s, a)
				c.nameHost(t.host, doc.line(tpath))
			}
			if !overlapsAny(t.prefix, env.Routes) {
				warnings = append(warnings, doc.at(tpath, "%s matches no routed prefix: the rule can never apply", what).Error())
			}
			cr.targets = append(cr.targets, t)
			texts = append(texts, t.String()+"/"+string(cr.proto))
		}
		cr.text = strings.Join(r.From, ", ") + " → " + strings.Join(texts, ", ")
		c.rules = append(c.rules, cr)
		cr.reason = "allowed by " + c.ruleName(i+1) + ": " + cr.text
		c.rules[i] = cr
	}
	c.users = sortedKeys(named)
	c.grants = make(map[string][]wire.Grant, len(c.users))
	for _, u := range c.users {
		c.grants[u] = c.grantsOf(u)
	}
	c.others = c.grantsOf("")
	if err := c.runTests(doc, env, opt, known); err != nil {
		return nil, nil, err
	}
	return c, warnings, nil
}

func (c *Compiled) nameHost(name string, line int) {
	if l, ok := c.hosts[name]; !ok || line < l {
		c.hosts[name] = line
	}
}

// grantsOf builds the grants of user from the rules.
func (c *Compiled) grantsOf(user string) []wire.Grant {
	var gs []wire.Grant
	for i := range c.rules {
		r := &c.rules[i]
		if !r.appliesTo(user) {
			continue
		}
		for _, t := range r.targets {
			gs = append(gs, wire.Grant{Prefix: t.prefix, Ports: t.ports, Proto: r.proto, Rule: i + 1})
		}
	}
	return normalizeGrants(gs)
}

// runTests checks the document's tests against c.
func (c *Compiled) runTests(doc *Document, env Env, opt Options, known map[string]bool) error {
	for i, t := range doc.Tests {
		path := testPath(i)
		if opt.Strict && !known[t.User] {
			return doc.at(path+".user", "test: unknown user %q: no token or node carries it and no group lists it", t.User)
		}
		for _, kind := range []string{"allow", "deny"} {
			items := t.Allow
			if kind == "deny" {
				items = t.Deny
			}
			for j, s := range items {
				ipath := itemPath(path, kind, j)
				d, _ := ParseDest(s) // checked
				a, err := d.Resolve(env.Hosts)
				if err != nil {
					return doc.at(ipath, "test destination %q: %v", s, err)
				}
				if d.Host != "" {
					c.nameHost(d.Host, doc.line(ipath))
				}
				dec := c.Decide(t.User, a, d.Port, d.Proto)
				if dec.Allow == (kind == "allow") {
					continue
				}
				flow := d.String()
				if d.Host != "" {
					flow = fmt.Sprintf("%s (%v)", flow, a)
				}
				if kind == "allow" {
					return doc.at(ipath, "test failed: %s → %s should be allowed, but no rule allows it", t.User, flow)
				}
				return doc.at(ipath, "test failed: %s → %s should be denied, but %s allows it: %s", t.User, flow, c.ruleName(dec.Rule), dec.RuleText)
			}
		}
	}
	return nil
}

// ruleName is "rule 3 (line 12)", or "rule 3" without lines.
func (c *Compiled) ruleName(i int) string {
	if line := c.rules[i-1].line; line > 0 {
		return fmt.Sprintf("rule %d (line %d)", i, line)
	}
	return fmt.Sprintf("rule %d", i)
}

func overlapsAny(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if q.IsValid() && q.Overlaps(p) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// compareGrants orders grants by prefix (routes.ComparePrefixes), ports,
// protocol, then rule.
func compareGrants(a, b wire.Grant) int {
	return cmp.Or(
		routes.ComparePrefixes(a.Prefix, b.Prefix),
		cmp.Compare(a.Ports.First, b.Ports.First),
		cmp.Compare(a.Ports.Last, b.Ports.Last),
		strings.Compare(string(a.Proto), string(b.Proto)),
		cmp.Compare(a.Rule, b.Rule),
	)
}

// normalizeGrants masks, sorts and deduplicates gs in place: of grants
// with the same prefix, ports and protocol it keeps the lowest rule's.
func normalizeGrants(gs []wire.Grant) []wire.Grant {
	for i := range gs {
		gs[i].Prefix = gs[i].Prefix.Masked()
	}
	slices.SortFunc(gs, compareGrants)
	return slices.CompactFunc(gs, func(a, b wire.Grant) bool {
		return a.Prefix == b.Prefix && a.Ports == b.Ports && a.Proto == b.Proto
	})
}
