package coord

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/policy"
)

// Log and API lines for the two modes.
const (
	allowAllText = "allow-all (no document set): every client reaches every routed destination"
)

// policyState is the access policy as a snapshot holds it. compiled is nil
// exactly when doc is: allow-all.
type policyState struct {
	// doc is the document as set; nil in allow-all mode.
	doc *store.StoredPolicy
	// parsed is doc parsed, kept to compile again when users, hosts or
	// routes change.
	parsed *policy.Document
	// compiled decides flows and gives every node its grants.
	compiled *policy.Compiled
	// broken says why the stored document does not compile any more, and
	// so why an older compile (or, at start, deny-all) is enforced; empty
	// when the document compiles.
	broken string
	// denyingAll says compiled is the deny-all stand-in for a document
	// that has not compiled since the coordinator started.
	denyingAll bool
}

// enforced reports whether a document is in force.
func (p policyState) enforced() bool { return p.compiled != nil }

// loadPolicy compiles the stored document at start. A document that no
// longer compiles is not dropped (that would open everything): every flow
// is denied until an admin sets one that compiles.
func (c *Coordinator) loadPolicy(s *snapshot, doc *store.StoredPolicy) {
	if doc == nil {
		c.log.Info("access policy: " + allowAllText)
		return
	}
	s.policy.doc = doc
	parsed, err := policy.Parse([]byte(doc.Text))
	if err == nil {
		s.policy.parsed = parsed
		s.policy.compiled, _, err = policy.Compile(parsed, s.policyEnv(), lenient)
	}
	if err != nil {
		s.policy.compiled = denyAll(s)
		s.policy.broken, s.policy.denyingAll = err.Error(), true
		c.log.Error("access policy: the stored document does not compile; denying every flow until a new one is set (warren policy set)", "err", err)
		return
	}
	c.log.Info(fmt.Sprintf("access policy: enforced, %d rules", len(parsed.Rules)))
}

// lenient is how a document already accepted is compiled again: users
// whose tokens and nodes are gone do not make it fail, and an empty rule
// list was accepted with --deny-all.
var lenient = policy.Options{DenyAll: true}

// denyAll is the policy that lets nothing through.
func denyAll(s *snapshot) *policy.Compiled {
	c, _, err := policy.Compile(&policy.Document{}, s.policyEnv(), lenient)
	if err != nil {
		panic(fmt.Sprintf("compiling the deny-all policy: %v", err)) // a bug in package policy
	}
	return c
}

// recompilePolicy compiles the document again against next's users,
// hosts and routes. If it no longer compiles, the last good compile stays
// in force and the error is logged: never fall open. Call with writeMu
// held, before publishing next.
func (c *Coordinator) recompilePolicy(next *snapshot) {
	p := &next.policy
	if p.parsed == nil {
		return
	}
	compiled, _, err := policy.Compile(p.parsed, next.policyEnv(), lenient)
	if err != nil {
		if p.broken == "" {
			c.log.Error("access policy: the document no longer compiles; the last good version stays in force", "err", err)
		}
		p.broken = err.Error()
		return
	}
	p.compiled, p.broken, p.denyingAll = compiled, "", false
}

// policyEnv is what a document is compiled against. Env.SSO stays false
// until single sign-on is wired in (h-login): it must be true when the
// coordinator has an identity provider, so a group nobody is in yet is a
// warning, not a refusal.
func (s *snapshot) policyEnv() policy.Env {
	env := policy.Env{
		Users:  s.users(),
		Hosts:  make(map[string]netip.Addr, len(s.hosts)),
		Routes: make([]netip.Prefix, len(s.routes)),
		Groups: s.providerGroups(),
	}
	for _, h := range s.hosts {
		env.Hosts[h.Name] = h.Address
	}
	for i, r := range s.routes {
		env.Routes[i] = r.Prefix
	}
	return env
}

// users lists the users tokens and nodes carry, sorted.
func (s *snapshot) users() []string {
	var us []string
	for _, t := range s.tokens {
		if t.User != "" {
			us = append(us, t.User)
		}
	}
	for _, n := range s.nodes {
		if n.User != "" {
			us = append(us, n.User)
		}
	}
	slices.Sort(us)
	return slices.Compact(us)
}

// providerGroups maps each identity-provider group to the users single
// sign-on put in it (their groups at the last login or validation), for
// group:NAME in the policy. Nil for now: h-login fills it from the users
// table once the snapshot holds users (a user that is disabled counts in
// no group).
func (s *snapshot) providerGroups() map[string][]string {
	return nil
}

// diffUsers are the users a policy change is reported on: every known
// user, and "" when a client has no user.
func (s *snapshot) diffUsers() []string {
	us := s.users()
	for _, n := range s.nodes {
		if n.Role == wire.RoleClient && n.User == "" {
			return append([]string{""}, us...)
		}
	}
	return us
}

// policyNamesHost reports whether the policy in force names the host, and
// on which line.
func (s *snapshot) policyNamesHost(name string) (line int, ok bool) {
	return s.policy.compiled.NamesHost(name)
}

// withPolicy returns a copy of s at version with p as the policy.
func (s *snapshot) withPolicy(version uint64, p policyState) (*snapshot, error) {
	next, err := s.with(version, nil, nil, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	next.policy = p
	next.policyDirty = false
	return next, nil
}

// Policy returns the access-policy document as set, or says allow-all.
func (c *Coordinator) Policy() wire.PolicyDocument {
	s := c.snap.Load()
	p := s.policy
	if p.doc == nil {
		return wire.PolicyDocument{Mode: wire.PolicyAllowAll, Reason: "no access policy is set: " + allowAllText + "; set one with: warren policy set FILE"}
	}
	at := p.doc.SetAt
	d := wire.PolicyDocument{Mode: wire.PolicyEnforced, Document: p.doc.Text, SetAt: &at}
	switch {
	case p.denyingAll:
		d.Reason = "the stored document does not compile (" + p.broken + "): every flow is denied until a new one is set"
	case p.broken != "":
		d.Reason = "the document no longer compiles (" + p.broken + "): the last version that did is enforced"
	default:
		d.Reason = fmt.Sprintf("enforced: %d rules; only what a rule allows passes", len(p.parsed.Rules))
	}
	return d
}

// SetPolicy checks a document against the current users, hosts and routes
// and, unless it is a dry run, puts it in force. Either way it reports
// what each user would gain and lose, and the warnings. A document that
// is refused (a *wire.Error with CodeInvalid, naming the line) changes
// nothing.
func (c *Coordinator) SetPolicy(ctx context.Context, req wire.SetPolicyRequest) (wire.SetPolicyResponse, error) {
	if err := wire.ValidateDocument("the policy document", req.Document); err != nil {
		return wire.SetPolicyResponse{}, invalid(err)
	}
	doc, err := policy.Parse([]byte(req.Document))
	if err != nil {
		return wire.SetPolicyResponse{}, invalid(err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	compiled, warnings, err := policy.Compile(doc, s.policyEnv(), policy.Options{DenyAll: req.DenyAll, Strict: true})
	if err != nil {
		return wire.SetPolicyResponse{}, invalid(err)
	}
	resp := wire.SetPolicyResponse{
		Applied:  !req.DryRun,
		Mode:     wire.PolicyEnforced,
		Changes:  policy.Diff(s.policy.compiled, compiled, s.diffUsers()),
		Warnings: warnings,
	}
	if req.DryRun {
		return resp, nil
	}
	now := c.now().UTC()
	version, err := c.store.SetPolicy(ctx, &req.Document, now)
	if err != nil {
		return wire.SetPolicyResponse{}, fmt.Errorf("storing access policy: %w", err)
	}
	next, err := s.withPolicy(version, policyState{
		doc:      &store.StoredPolicy{Text: req.Document, SetAt: now},
		parsed:   doc,
		compiled: compiled,
	})
	if err != nil {
		return wire.SetPolicyResponse{}, err
	}
	c.publish(next)
	c.log.Info(fmt.Sprintf("access policy: enforced, %d rules", len(doc.Rules)), "changed_users", len(resp.Changes), "warnings", len(warnings))
	return resp, nil
}

// ResetPolicy removes the document: back to allow-all.
func (c *Coordinator) ResetPolicy(ctx context.Context) (wire.SetPolicyResponse, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	resp := wire.SetPolicyResponse{Applied: true, Mode: wire.PolicyAllowAll}
	if s.policy.doc == nil {
		return resp, nil
	}
	resp.Changes = policy.Diff(s.policy.compiled, nil, s.diffUsers())
	version, err := c.store.SetPolicy(ctx, nil, c.now().UTC())
	if err != nil {
		return wire.SetPolicyResponse{}, fmt.Errorf("removing access policy: %w", err)
	}
	next, err := s.withPolicy(version, policyState{})
	if err != nil {
		return wire.SetPolicyResponse{}, err
	}
	c.publish(next)
	c.log.Info("access policy: " + allowAllText)
	return resp, nil
}

// PolicyWhy says whether user may reach dest ("IP:PORT[/PROTO]" or
// "HOST:PORT[/PROTO]", tcp when no protocol is given) under the policy in
// force, and which rule decides. A denial is an answer; a question about
// an unknown user or host, or a malformed one, is a *wire.Error with
// CodeInvalid.
func (c *Coordinator) PolicyWhy(user, dest string) (wire.PolicyDecision, error) {
	if err := wire.ValidateUser(user); err != nil {
		return wire.PolicyDecision{}, invalid(err)
	}
	s := c.snap.Load()
	if !s.knowsUser(user) {
		return wire.PolicyDecision{}, errorf(wire.CodeInvalid, "unknown user %q: no token or node carries it and no group of the policy lists it", user)
	}
	d, err := policy.ParseDest(strings.TrimSpace(dest))
	if err != nil {
		return wire.PolicyDecision{}, invalid(err)
	}
	env := s.policyEnv()
	a, err := d.Resolve(env.Hosts)
	if err != nil {
		return wire.PolicyDecision{}, invalid(err)
	}
	return s.policy.compiled.Decide(user, a.Unmap(), d.Port, d.Proto), nil
}

// knowsUser reports whether a token or node carries user, or a group of
// the policy or of the identity provider lists it.
func (s *snapshot) knowsUser(user string) bool {
	if _, ok := slices.BinarySearch(s.users(), user); ok {
		return true
	}
	for _, members := range s.providerGroups() {
		if slices.Contains(members, user) {
			return true
		}
	}
	if s.policy.parsed != nil {
		for _, members := range s.policy.parsed.Groups {
			if slices.Contains(members, user) {
				return true
			}
		}
	}
	return false
}

// clientPolicy is the access policy as a client sees it: its own grants,
// the rules they come from, and the principals its user's SSH
// certificates carry.
func (s *snapshot) clientPolicy(self wire.Node) wire.NetMapPolicy {
	c := s.policy.compiled
	if c == nil {
		return wire.NetMapPolicy{}
	}
	p := wire.NetMapPolicy{Enforced: true, SSHAs: c.SSHPrincipals(self.User)}
	if gs := c.Grants(self.User); len(gs) > 0 {
		p.Grants, p.Rules = gs, c.Rules(gs)
	}
	return p
}

// peerGrants is what a client may reach through a connector serving
// served; nil under allow-all.
func (s *snapshot) peerGrants(client wire.Node, served []netip.Prefix) []wire.Grant {
	return s.policy.compiled.GrantsWithin(client.User, served)
}
