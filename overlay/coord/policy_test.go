package coord

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// testPolicy is the document most policy tests set; see policyHarness for
// the state it is compiled against.
const testPolicy = `{
  // who may reach what
  "groups": {"eng": ["alice@example.com"]},
  "rules": [
    {"from": ["group:eng"], "to": ["192.168.0.0/24:22", "web:443"]},
    {"from": ["user:bob@example.com"], "to": ["10.1.0.0/16:*"], "proto": "any"},
  ],
  "tests": [
    {"user": "alice@example.com", "allow": ["192.168.0.10:22", "web:443"], "deny": ["192.168.0.10:8080"]},
  ],
}
`

// policyNodes are the nodes of a policyHarness.
type policyNodes struct {
	alice, bob, kiosk, office, lab wire.EnrollResponse
}

// policyHarness enrolls alice's and bob's laptops (each with its user), a
// kiosk without a user, connector office serving 192.168.0.0/24 and
// connector lab serving 10.1.0.0/16, and names host web 192.168.0.10.
func policyHarness(t *testing.T) (*harness, policyNodes) {
	t.Helper()
	h := newHarness(t)
	ctx := context.Background()
	var n policyNodes
	n.alice = h.enrollUser("alice", "alice@example.com")
	n.bob = h.enrollUser("bob", "bob@example.com")
	n.kiosk = h.enroll(wire.RoleClient, "kiosk")
	n.office = h.enroll(wire.RoleConnector, "office")
	n.lab = h.enroll(wire.RoleConnector, "lab")
	for _, r := range []wire.AddRouteRequest{
		{Prefix: "192.168.0.0/24", Connector: "office"},
		{Prefix: "10.1.0.0/16", Connector: "lab"},
	} {
		if _, err := h.c.AddRoute(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.c.AddHost(ctx, wire.AddHostRequest{Name: "web", Address: "192.168.0.10"}); err != nil {
		t.Fatal(err)
	}
	return h, n
}

// enrollUser enrolls a client of user with a fresh single-use token.
func (h *harness) enrollUser(name, user string) wire.EnrollResponse {
	h.t.Helper()
	ctx := context.Background()
	resp, err := h.c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: name, User: user})
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := h.c.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: testKey()})
	if err != nil {
		h.t.Fatalf("Enroll(%s): %v", name, err)
	}
	return e
}

func (h *harness) setPolicy(doc string) wire.SetPolicyResponse {
	h.t.Helper()
	resp, err := h.c.SetPolicy(context.Background(), wire.SetPolicyRequest{Document: doc})
	if err != nil {
		h.t.Fatalf("SetPolicy: %v", err)
	}
	return resp
}

func grant(prefix, ports string, proto wire.Proto, rule int) wire.Grant {
	r, err := wire.ParsePortRange(ports)
	if err != nil {
		panic(err)
	}
	return wire.Grant{Prefix: netip.MustParsePrefix(prefix), Ports: r, Proto: proto, Rule: rule}
}

// peerGrants maps a connector netmap's client peers to their grants.
func peerGrants(nm *wire.NetMap) map[string][]wire.Grant {
	out := map[string][]wire.Grant{}
	for _, p := range nm.Peers {
		out[p.Name] = p.Grants
	}
	return out
}

func TestPolicyAllowAllByDefault(t *testing.T) {
	h, n := policyHarness(t)
	doc := h.c.Policy()
	if doc.Mode != wire.PolicyAllowAll || doc.Document != "" || doc.SetAt != nil ||
		!strings.Contains(doc.Reason, "every client reaches every routed destination") {
		t.Errorf("Policy() = %+v, want allow-all saying so", doc)
	}
	lc, oc := newFakeConn(), newFakeConn()
	h.serve(n.alice.Node, lc)
	h.serve(n.office.Node, oc)
	if nm := nextNetMap(t, lc); !cmp.Equal(nm.Policy, wire.NetMapPolicy{}) {
		t.Errorf("client netmap policy under allow-all = %+v, want none", nm.Policy)
	}
	nm := nextNetMap(t, oc)
	if nm.Policy.Enforced {
		t.Errorf("connector netmap: Enforced under allow-all")
	}
	for name, gs := range peerGrants(nm) {
		if gs != nil {
			t.Errorf("connector netmap: %s has grants %v under allow-all", name, gs)
		}
	}
	d, err := h.c.PolicyWhy("alice@example.com", "192.168.0.10:8080")
	if err != nil || !d.Allow {
		t.Errorf("PolicyWhy under allow-all = %+v, %v; want allowed", d, err)
	}
	if e := h.c.Export(); e.Policy != "" {
		t.Errorf("Export().Policy = %q under allow-all", e.Policy)
	}
}

func TestSetPolicyRefusals(t *testing.T) {
	h, _ := policyHarness(t)
	before := h.c.Export()
	tests := []struct {
		name, doc string
		denyAll   bool
		want      string
	}{
		{"syntax", "{\n  \"rules\": [\n    {\"from\": [\"*\"] \"to\": []}\n  ]\n}", false, "line 3: "},
		{"unknown key", "{\n  \"rulez\": []\n}", false, "line 2: "},
		{"unknown group", "{\n  \"rules\": [\n    {\"from\": [\"group:ops\"], \"to\": [\"10.1.0.0/16:22\"]}\n  ]\n}", false, "line 3: "},
		{"unknown user", "{\n  \"rules\": [\n    {\"from\": [\"user:carol@example.com\"], \"to\": [\"10.1.0.0/16:22\"]}\n  ]\n}", false,
			`line 3: unknown user "carol@example.com": no token or node carries it and no group lists it`},
		{"undeclared host", "{\n  \"rules\": [\n    {\"from\": [\"*\"], \"to\": [\"db:5432\"]}\n  ]\n}", false, "line 3: "},
		{"bad port", "{\n  \"rules\": [\n    {\"from\": [\"*\"], \"to\": [\"10.1.0.0/16:99999\"]}\n  ]\n}", false, "line 3: "},
		{"no rules", `{"rules": []}`, false, "line 1: the document has no rules, so it denies everything"},
		{"failing test", testPolicy[:strings.Index(testPolicy, `"tests"`)] + `"tests": [{"user": "alice@example.com", "deny": ["192.168.0.10:22"]}]}`, false,
			"should be denied, but rule 1 (line 5) allows it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dry := range []bool{false, true} {
				_, err := h.c.SetPolicy(context.Background(), wire.SetPolicyRequest{Document: tt.doc, DenyAll: tt.denyAll, DryRun: dry})
				var we *wire.Error
				if !errors.As(err, &we) || we.Code != wire.CodeInvalid {
					t.Fatalf("SetPolicy(dry run %v) = %v; want a CodeInvalid *wire.Error", dry, err)
				}
				if !strings.Contains(we.Message, tt.want) || strings.Contains(we.Message, "\n") {
					t.Errorf("SetPolicy(dry run %v): message %q, want one line holding %q", dry, we.Message, tt.want)
				}
			}
			if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
				t.Errorf("a refused document changed state (-before +after):\n%s", diff)
			}
			if got := h.c.Policy().Mode; got != wire.PolicyAllowAll {
				t.Errorf("mode after a refusal = %s", got)
			}
		})
	}
}

func TestSetPolicyDryRunChangesNothing(t *testing.T) {
	h, _ := policyHarness(t)
	before := h.c.Export()
	resp, err := h.c.SetPolicy(context.Background(), wire.SetPolicyRequest{Document: testPolicy, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := wire.SetPolicyResponse{
		Applied: false,
		Mode:    wire.PolicyEnforced,
		Changes: []wire.PolicyChange{
			{User: "", Lost: []string{"*"}},
			{User: "alice@example.com", Gained: []string{"192.168.0.0/24:22/tcp", "192.168.0.10:443/tcp"}, Lost: []string{"*"}},
			{User: "bob@example.com", Gained: []string{"10.1.0.0/16:*/any"}, Lost: []string{"*"}},
		},
	}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("a dry run changed state (-before +after):\n%s", diff)
	}
}

func TestSetPolicyIsEnforcedInNetMaps(t *testing.T) {
	h, n := policyHarness(t)
	conns := map[string]*fakeConn{}
	for _, e := range []wire.EnrollResponse{n.alice, n.kiosk, n.office, n.lab} {
		conns[e.Node.Name] = newFakeConn()
		h.serve(e.Node, conns[e.Node.Name])
	}
	// Drain: first netmaps, then the clients' for connectors coming online.
	eventually(t, 2*time.Second, "all streams connected", func() bool { return h.c.connected() == 4 })
	drain := func() map[string]*wire.NetMap {
		latest := map[string]*wire.NetMap{}
		for name, c := range conns {
			latest[name] = nextNetMap(t, c)
			for len(c.out) > 0 {
				if m := <-c.out; m.Type == wire.MsgNetMap {
					latest[name] = m.NetMap
				}
			}
		}
		return latest
	}
	drain()

	resp := h.setPolicy(testPolicy)
	if !resp.Applied || resp.Mode != wire.PolicyEnforced || len(resp.Changes) != 3 {
		t.Errorf("SetPolicy = %+v", resp)
	}
	v := h.c.Version()
	nms := map[string]*wire.NetMap{}
	for name, c := range conns {
		eventually(t, 2*time.Second, name+" gets the policy", func() bool {
			for {
				select {
				case m := <-c.out:
					if m.Type == wire.MsgNetMap {
						nms[name] = m.NetMap
					}
				default:
					return nms[name] != nil && nms[name].Version == v
				}
			}
		})
	}

	aliceGrants := []wire.Grant{grant("192.168.0.0/24", "22", wire.ProtoTCP, 1), grant("192.168.0.10/32", "443", wire.ProtoTCP, 1)}
	rule1 := "group:eng → 192.168.0.0/24:22/tcp, web:443/tcp"
	wantAlice := wire.NetMapPolicy{Enforced: true, Grants: aliceGrants, Rules: []wire.PolicyRule{{Index: 1, Text: rule1}}}
	if diff := cmp.Diff(wantAlice, nms["alice"].Policy, netipEqual); diff != "" {
		t.Errorf("alice's netmap policy (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wire.NetMapPolicy{Enforced: true}, nms["kiosk"].Policy, netipEqual); diff != "" {
		t.Errorf("kiosk's netmap policy (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		connector string
		want      map[string][]wire.Grant
	}{
		{"office", map[string][]wire.Grant{"alice": aliceGrants, "bob": nil, "kiosk": nil}},
		{"lab", map[string][]wire.Grant{"alice": nil, "bob": {grant("10.1.0.0/16", "*", wire.ProtoAny, 2)}, "kiosk": nil}},
	} {
		nm := nms[tt.connector]
		if !nm.Policy.Enforced || nm.Policy.Grants != nil || nm.Policy.Rules != nil {
			t.Errorf("%s netmap policy = %+v, want only Enforced", tt.connector, nm.Policy)
		}
		if diff := cmp.Diff(tt.want, peerGrants(nm), netipEqual); diff != "" {
			t.Errorf("%s netmap grants (-want +got):\n%s", tt.connector, diff)
		}
	}

	doc := h.c.Policy()
	if doc.Mode != wire.PolicyEnforced || doc.Document != testPolicy || doc.SetAt == nil || !doc.SetAt.Equal(h.clock.Now()) {
		t.Errorf("Policy() = %+v, want the document as set", doc)
	}
	if got := h.c.Export().Policy; got != testPolicy {
		t.Errorf("Export().Policy = %q, want the document", got)
	}

	// Reset: back to allow-all, reported per user, pushed to everyone.
	reset, err := h.c.ResetPolicy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if reset.Mode != wire.PolicyAllowAll || len(reset.Changes) != 3 || reset.Changes[1].Gained[0] != "*" {
		t.Errorf("ResetPolicy = %+v", reset)
	}
	if nm := nextNetMap(t, conns["office"]); nm.Policy.Enforced || peerGrants(nm)["alice"] != nil {
		t.Errorf("office netmap after reset = %+v, want allow-all", nm)
	}
	v = h.c.Version()
	if again, err := h.c.ResetPolicy(context.Background()); err != nil || len(again.Changes) != 0 || h.c.Version() != v {
		t.Errorf("second reset = %+v, %v at v%d (was v%d); want no change", again, err, h.c.Version(), v)
	}
}

func TestPolicyWhy(t *testing.T) {
	h, _ := policyHarness(t)
	h.setPolicy(testPolicy)
	tests := []struct {
		user, dest string
		allow      bool
		rule       int
		reason     string
	}{
		{"alice@example.com", "192.168.0.10:22", true, 1, "allowed by rule 1 (line 5): group:eng → 192.168.0.0/24:22/tcp, web:443/tcp"},
		{"alice@example.com", "web:443/tcp", true, 1, "allowed by rule 1 (line 5): group:eng → 192.168.0.0/24:22/tcp, web:443/tcp"},
		{"alice@example.com", "192.168.0.10:8080", false, 0, "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp"},
		{"alice@example.com", "192.168.0.10:22/udp", false, 0, "denied by policy: no rule lets alice@example.com reach 192.168.0.10:22/udp"},
		{"bob@example.com", "10.1.2.3:53/udp", true, 2, "allowed by rule 2 (line 6): user:bob@example.com → 10.1.0.0/16:*/any"},
	}
	for _, tt := range tests {
		d, err := h.c.PolicyWhy(tt.user, tt.dest)
		if err != nil {
			t.Errorf("PolicyWhy(%s, %s): %v", tt.user, tt.dest, err)
			continue
		}
		if d.Allow != tt.allow || d.Rule != tt.rule || d.Reason != tt.reason {
			t.Errorf("PolicyWhy(%s, %s) = %v rule %d %q; want %v rule %d %q", tt.user, tt.dest, d.Allow, d.Rule, d.Reason, tt.allow, tt.rule, tt.reason)
		}
	}
	for _, tt := range []struct{ user, dest, want string }{
		{"alice", "192.168.0.10:22", `user "alice" is not an e-mail address (name@domain)`},
		{"carol@example.com", "192.168.0.10:22", `unknown user "carol@example.com": no token or node carries it and no group of the policy lists it`},
		{"alice@example.com", "db:5432", `host "db" is not declared (warren hosts add db IP)`},
		{"alice@example.com", "192.168.0.10", ""},
		{"alice@example.com", "192.168.0.0/24:22", ""},
		{"bob@example.com", "[::ffff:10.1.2.3]:53/udp", "did you mean 10.1.2.3?"},
	} {
		_, err := h.c.PolicyWhy(tt.user, tt.dest)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeInvalid || !strings.Contains(we.Message, tt.want) {
			t.Errorf("PolicyWhy(%s, %s) = %v; want invalid: %s", tt.user, tt.dest, err, tt.want)
		}
	}
}

func TestRemoveHostNamedByPolicy(t *testing.T) {
	h, _ := policyHarness(t)
	ctx := context.Background()
	h.setPolicy(testPolicy)
	before := h.c.Export()
	err := h.c.RemoveHost(ctx, "web")
	var we *wire.Error
	want := `the access policy names host "web" (line 5); change the policy first (warren policy get, warren policy set FILE)`
	if !errors.As(err, &we) || we.Code != wire.CodeConflict || we.Message != want {
		t.Errorf("RemoveHost(web) = %v; want conflict: %s", err, want)
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("a refused removal changed state (-before +after):\n%s", diff)
	}
	if _, err := h.c.ResetPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.c.RemoveHost(ctx, "web"); err != nil {
		t.Errorf("RemoveHost(web) under allow-all: %v", err)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// restart starts a second coordinator on h's store, logging to a buffer.
func (h *harness) restart() (*Coordinator, *syncBuffer) {
	h.t.Helper()
	var logs syncBuffer
	c, err := New(context.Background(), Config{Store: h.store, URL: "https://198.51.100.10:8443", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		h.t.Fatal(err)
	}
	return c, &logs
}

func TestPolicySurvivesRestartAndSaysSo(t *testing.T) {
	h, n := policyHarness(t)
	c, logs := h.restart()
	if want := "access policy: allow-all (no document set): every client reaches every routed destination"; !strings.Contains(logs.String(), want) {
		t.Errorf("start log lacks %q:\n%s", want, logs)
	}
	h.setPolicy(testPolicy)
	c, logs = h.restart()
	if want := "access policy: enforced, 2 rules"; !strings.Contains(logs.String(), want) {
		t.Errorf("start log lacks %q:\n%s", want, logs)
	}
	if doc := c.Policy(); doc.Mode != wire.PolicyEnforced || doc.Document != testPolicy {
		t.Errorf("Policy() after restart = %+v", doc)
	}
	if got := c.netMap(c.snap.Load(), n.alice.Node).Policy; len(got.Grants) != 2 {
		t.Errorf("alice's grants after restart = %+v", got)
	}
}

// TestBrokenStoredPolicyDeniesAll: a stored document that no longer
// compiles must not open everything.
func TestBrokenStoredPolicyDeniesAll(t *testing.T) {
	h, n := policyHarness(t)
	h.setPolicy(testPolicy)
	// Behind the coordinator's back, the host the policy names goes.
	if _, err := h.store.RemoveHost(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	c, logs := h.restart()
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), `host \"web\" is not declared`) {
		t.Errorf("start log does not report the broken policy:\n%s", logs)
	}
	doc := c.Policy()
	if doc.Mode != wire.PolicyEnforced || !strings.Contains(doc.Reason, "every flow is denied") {
		t.Errorf("Policy() = %+v, want enforced, denying everything", doc)
	}
	d, err := c.PolicyWhy("alice@example.com", "192.168.0.10:22")
	if err != nil || d.Allow {
		t.Errorf("PolicyWhy with a broken policy = %+v, %v; want denied", d, err)
	}
	s := c.snap.Load()
	nm := c.netMap(s, n.office.Node)
	if !nm.Policy.Enforced || len(peerGrants(nm)["alice"]) != 0 {
		t.Errorf("office netmap with a broken policy = %+v, want enforced, no grants", nm)
	}
}

// TestRecompileKeepsLastGoodPolicy: when a write leaves the document
// unable to compile, the last good compile stays in force.
func TestRecompileKeepsLastGoodPolicy(t *testing.T) {
	h, n := policyHarness(t)
	h.setPolicy(testPolicy)
	good := h.c.snap.Load().policy.compiled

	// Hosts cannot lose a host the policy names through the API; build
	// the snapshot such a write would publish.
	h.c.writeMu.Lock()
	s := h.c.snap.Load()
	next, err := s.withHosts(s.version+1, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.c.publish(next)
	h.c.writeMu.Unlock()

	p := h.c.snap.Load().policy
	if p.compiled != good || !strings.Contains(p.broken, `host "web" is not declared`) {
		t.Errorf("after a write that breaks the policy: compiled kept %v, broken %q", p.compiled == good, p.broken)
	}
	if got := h.c.netMap(h.c.snap.Load(), n.alice.Node).Policy; len(got.Grants) != 2 {
		t.Errorf("alice's grants after the breaking write = %+v, want the last good ones", got)
	}
	if doc := h.c.Policy(); !strings.Contains(doc.Reason, "the last version that did is enforced") {
		t.Errorf("Policy().Reason = %q", doc.Reason)
	}

	// A later write that makes it compile again clears the error.
	h.c.writeMu.Lock()
	s = h.c.snap.Load()
	next, err = s.withHosts(s.version+1, []wire.Host{{Name: "web", Address: netip.MustParseAddr("192.168.0.20")}})
	if err != nil {
		t.Fatal(err)
	}
	h.c.publish(next)
	h.c.writeMu.Unlock()
	p = h.c.snap.Load().policy
	if p.broken != "" || p.compiled == good {
		t.Errorf("after the fixing write: broken %q, still the old compile %v", p.broken, p.compiled == good)
	}
	d, _ := h.c.PolicyWhy("alice@example.com", "192.168.0.20:443")
	if !d.Allow {
		t.Errorf("the recompiled policy does not follow web to its new address: %+v", d)
	}
}

func TestPolicySSHAsInNetMaps(t *testing.T) {
	h, n := policyHarness(t)
	h.setPolicy(`{
  "groups": {"eng": ["alice@example.com"]},
  "ssh": [
    {"from": ["group:eng"], "to": ["web"], "as": ["deploy", "alice"]},
    {"from": ["*"], "to": ["192.168.0.0/24"], "as": ["guest"]},
  ],
  "tests": [{"user": "alice@example.com", "ssh_as": ["deploy"], "ssh_deny_as": ["root"]}],
}`)
	conns := map[string]*fakeConn{}
	for _, e := range []wire.EnrollResponse{n.alice, n.kiosk, n.office} {
		conns[e.Node.Name] = newFakeConn()
		h.serve(e.Node, conns[e.Node.Name])
	}
	ssh1, ssh2 := wire.SSHRuleBase+1, wire.SSHRuleBase+2
	aliceGrants := []wire.Grant{grant("192.168.0.0/24", "22", wire.ProtoTCP, ssh2), grant("192.168.0.10/32", "22", wire.ProtoTCP, ssh1)}
	wantAlice := wire.NetMapPolicy{
		Enforced: true,
		Grants:   aliceGrants,
		Rules: []wire.PolicyRule{
			{Index: ssh1, Text: "group:eng → web:22/tcp as deploy, alice"},
			{Index: ssh2, Text: "* → 192.168.0.0/24:22/tcp as guest"},
		},
		SSHAs: []string{"alice", "deploy", "guest"},
	}
	if diff := cmp.Diff(wantAlice, nextNetMap(t, conns["alice"]).Policy, netipEqual); diff != "" {
		t.Errorf("alice's netmap policy (-want +got):\n%s", diff)
	}
	// A client without a user reaches port 22 through the * ssh rule,
	// but gets no principals: no certificate can name it.
	kiosk := nextNetMap(t, conns["kiosk"]).Policy
	if kiosk.SSHAs != nil || len(kiosk.Grants) != 1 {
		t.Errorf("kiosk's netmap policy = %+v, want the * grant and no principals", kiosk)
	}
	if got := peerGrants(nextNetMap(t, conns["office"]))["alice"]; !cmp.Equal(aliceGrants, got, netipEqual) {
		t.Errorf("office's grants for alice = %v, want %v", got, aliceGrants)
	}
}
