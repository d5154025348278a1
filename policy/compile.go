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
	rules  []crule                 // the rules, then the ssh rules: by index
	nrules int                     // how many of rules are the document's rules
	grants map[string][]wire.Grant // of each user the document names
	others []wire.Grant            // of every other client: the * rules'
	ssh    map[string][]string     // principals of each user the document names
	sshAll []string                // principals of every other user: the * ssh rules'
	users  []string                // the users the document names, sorted
	hosts  map[string]int          // host name → first line naming it
}

// crule is one compiled rule or ssh rule.
type crule struct {
	index   int // as in wire.Grant.Rule
	line    int
	text    string          // as RuleText returns it
	reason  string          // of the decisions it allows
	all     bool            // from holds *
	users   map[string]bool // from's users, groups expanded
	proto   wire.Proto
	targets []target // hosts resolved
	as      []string // an ssh rule's principals
}

// rule returns the rule with index i (wire.RuleName), or nil.
func (c *Compiled) rule(i int) *crule {
	switch {
	case i >= 1 && i <= c.nrules:
		return &c.rules[i-1]
	case i > wire.SSHRuleBase && i-wire.SSHRuleBase <= len(c.rules)-c.nrules:
		return &c.rules[c.nrules+i-wire.SSHRuleBase-1]
	}
	return nil
}

func (r *crule) appliesTo(user string) bool { return r.all || r.users[user] }

// Compile checks doc against env and builds the policy it describes. It
// refuses, with the first problem as an *Error (one line, "line N: ..."):
// anything Parse refuses (for a document built in code); a group neither
// the document nor env.Groups has, unless env.SSO (or, without
// opt.Strict, a document already accepted); a host that is not declared;
// with opt.Strict, a user env does not know and no group lists; no rules
// and no ssh rules unless opt.DenyAll; and any failing test, printed with
// the rule that decided it. Warnings, one line each, name (ssh) rule
// destinations that no routed prefix overlaps and groups with no members.
func Compile(doc *Document, env Env, opt Options) (*Compiled, []string, error) {
	if doc == nil {
		return nil, nil, &Error{Msg: "no document"}
	}
	if err := doc.check(); err != nil {
		return nil, nil, err
	}
	if len(doc.Rules) == 0 && len(doc.SSH) == 0 && !opt.DenyAll {
		return nil, nil, doc.at("rules", "the document has no rules, so it denies everything: ask for deny-all if that is what you want")
	}
	cc := &compiler{doc: doc, env: env, opt: opt, known: map[string]bool{}, named: map[string]bool{}, c: &Compiled{hosts: map[string]int{}}}
	for _, u := range env.Users {
		cc.known[u] = true
	}
	for _, members := range env.Groups {
		for _, u := range members {
			cc.known[u] = true
		}
	}
	for _, members := range doc.Groups {
		for _, u := range members {
			cc.known[u], cc.named[u] = true, true
		}
	}
	c := cc.c
	for i, r := range doc.Rules {
		cr, err := cc.rule(rulePath(i), "rule", r.From, r.To, r.Proto, nil)
		if err != nil {
			return nil, nil, err
		}
		cr.index = i + 1
		c.rules = append(c.rules, cr)
	}
	c.nrules = len(c.rules)
	for i, r := range doc.SSH {
		cr, err := cc.rule(sshPath(i), "ssh rule", r.From, r.To, "", r.As)
		if err != nil {
			return nil, nil, err
		}
		cr.index = wire.SSHRuleBase + i + 1
		c.rules = append(c.rules, cr)
	}
	for i := range c.rules {
		r := &c.rules[i]
		r.reason = "allowed by " + c.ruleName(r.index) + ": " + r.text
	}
	c.users = sortedKeys(cc.named)
	c.grants = make(map[string][]wire.Grant, len(c.users))
	c.ssh = make(map[string][]string, len(c.users))
	for _, u := range c.users {
		c.grants[u] = c.grantsOf(u)
		c.ssh[u] = c.principalsOf(u)
	}
	c.others = c.grantsOf("")
	c.sshAll = c.principalsOf("")
	if err := c.runTests(doc, env, opt, cc.known); err != nil {
		return nil, nil, err
	}
	return c, cc.warnings, nil
}

// compiler holds what Compile builds up.
type compiler struct {
	doc      *Document
	env      Env
	opt      Options
	known    map[string]bool // users env knows and the document's groups list
	named    map[string]bool // users the compiled policy names
	c        *Compiled
	warnings []string
}

// rule compiles the rule or ssh rule (what) at path. An ssh rule (as not
// nil) has destinations without ports and grants TCP port 22 on them.
func (cc *compiler) rule(path, what string, from, to []string, proto string, as []string) (crule, error) {
	doc, env := cc.doc, cc.env
	cr := crule{line: doc.line(path), users: map[string]bool{}}
	cr.proto, _ = parseRuleProto(proto) // checked
	for j, f := range from {
		fpath := itemPath(path, "from", j)
		src, _ := parseSource(f) // checked
		switch {
		case src.all:
			cr.all = true
		case src.group != "":
			members, inDoc := doc.Groups[src.group]
			fromSSO, inSSO := env.Groups[src.group]
			switch {
			case !inDoc && !inSSO && !env.SSO && cc.opt.Strict:
				return crule{}, doc.at(fpath, "unknown group %q (the document's groups define it)", src.group)
			case !inDoc && !inSSO && !env.SSO:
				// A document already accepted: its group may have
				// come from single sign-on, since turned off.
				cc.warnings = append(cc.warnings, doc.at(fpath, "unknown group %q: it lets no one through", src.group).Error())
			case !inDoc && len(fromSSO) == 0:
				cc.warnings = append(cc.warnings, doc.at(fpath, "no user is in group:%s yet", src.group).Error())
			case len(members) == 0 && len(fromSSO) == 0:
				cc.warnings = append(cc.warnings, doc.at(fpath, "group:%s has no members: it lets no one through", src.group).Error())
			}
			for _, u := range members {
				cr.users[u] = true
			}
			for _, u := range fromSSO {
				cr.users[u], cc.named[u] = true, true
			}
		default:
			if cc.opt.Strict && !cc.known[src.user] {
				return crule{}, doc.at(fpath, "unknown user %q: no token or node carries it and no group lists it", src.user)
			}
			cr.users[src.user], cc.named[src.user] = true, true
		}
	}
	texts := make([]string, 0, len(to))
	for j, s := range to {
		tpath := itemPath(path, "to", j)
		var t target
		if as != nil {
			t, _ = parseSSHTarget(s) // checked
		} else {
			t, _ = parseTarget(s) // checked
		}
		shown := s
		if t.host != "" {
			a, err := (Dest{Host: t.host}).Resolve(env.Hosts)
			if err != nil {
				return crule{}, doc.at(tpath, "destination %q: %v", s, err)
			}
			t.prefix = netip.PrefixFrom(a, a.BitLen())
			shown = fmt.Sprintf("%s (%v)", s, a)
			cc.c.nameHost(t.host, doc.line(tpath))
		}
		if !overlapsAny(t.prefix, env.Routes) {
			cc.warnings = append(cc.warnings, doc.at(tpath, "%s matches no routed prefix: the %s can never apply", shown, what).Error())
		}
		cr.targets = append(cr.targets, t)
		texts = append(texts, t.String()+"/"+string(cr.proto))
	}
	cr.text = strings.Join(from, ", ") + " → " + strings.Join(texts, ", ")
	if as != nil {
		cr.as = slices.Clone(as)
		cr.text += " as " + strings.Join(as, ", ")
	}
	return cr, nil
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
			gs = append(gs, wire.Grant{Prefix: t.prefix, Ports: t.ports, Proto: r.proto, Rule: r.index})
		}
	}
	return normalizeGrants(gs)
}

// principalsOf builds the principals of user from the ssh rules: sorted,
// without duplicates; nil when there are none. For "" they are the *
// ssh rules'.
func (c *Compiled) principalsOf(user string) []string {
	var ps []string
	for _, r := range c.rules[c.nrules:] {
		if r.appliesTo(user) {
			ps = append(ps, r.as...)
		}
	}
	slices.Sort(ps)
	return slices.Clip(slices.Compact(ps))
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
		principals := c.SSHPrincipals(t.User)
		for j, p := range t.SSHAs {
			if !slices.Contains(principals, p) {
				return doc.at(itemPath(path, "ssh_as", j), "test failed: %s should log in with ssh as %s, but no ssh rule lets them", t.User, p)
			}
		}
		for j, p := range t.SSHDenyAs {
			if r := c.sshRuleGranting(t.User, p); r != nil {
				return doc.at(itemPath(path, "ssh_deny_as", j), "test failed: %s should not log in with ssh as %s, but %s lets them: %s", t.User, p, c.ruleName(r.index), r.text)
			}
		}
	}
	return nil
}

// sshRuleGranting returns the first ssh rule that lets user log in as
// principal, or nil.
func (c *Compiled) sshRuleGranting(user, principal string) *crule {
	if user == "" {
		return nil
	}
	for i := c.nrules; i < len(c.rules); i++ {
		if r := &c.rules[i]; r.appliesTo(user) && slices.Contains(r.as, principal) {
			return r
		}
	}
	return nil
}

// ruleName is "rule 3 (line 12)" or "ssh rule 1 (line 20)", without the
// line for a document built in code.
func (c *Compiled) ruleName(i int) string {
	if r := c.rule(i); r != nil && r.line > 0 {
		return fmt.Sprintf("%s (line %d)", wire.RuleName(i), r.line)
	}
	return wire.RuleName(i)
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
