package wire

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Access-policy, host and flow-log paths.
const (
	PathPolicy      = "/v1/admin/policy"       // GET: PolicyDocument; PUT SetPolicyRequest: SetPolicyResponse
	PathPolicyReset = "/v1/admin/policy/reset" // POST: SetPolicyResponse
	PathPolicyWhy   = "/v1/admin/policy/why"   // GET ?user=U&dest=DEST:PORT[/PROTO]: PolicyDecision
	PathHosts       = "/v1/admin/hosts"        // GET: []Host; POST AddHostRequest: Host; DELETE …/NAME
	PathFlows       = "/v1/admin/flows"        // GET ?user=U&dest=CIDR&since=DURATION&denied=1&limit=N: []FlowRecord
	PathFlowReport  = "/v1/flows"              // POST FlowReport with a connector's credential
)

// PolicyMode says whether an access policy is in force.
type PolicyMode string

// Policy modes.
const (
	// PolicyAllowAll: no document is set; every client reaches every
	// routed destination (Warren's behaviour before policies existed).
	PolicyAllowAll PolicyMode = "allow-all"
	// PolicyEnforced: a document is set; only what a rule allows passes.
	PolicyEnforced PolicyMode = "enforced"
)

// PolicyDocument answers GET PathPolicy.
type PolicyDocument struct {
	Mode PolicyMode `json:"mode"`
	// Document is the text exactly as the admin set it (HuJSON: comments
	// and trailing commas kept); empty in allow-all mode.
	Document string     `json:"document,omitempty"`
	SetAt    *time.Time `json:"set_at,omitempty"`
	// Reason says the mode in one line a person can act on.
	Reason string `json:"reason"`
}

// SetPolicyRequest is the body of PUT PathPolicy.
type SetPolicyRequest struct {
	Document string `json:"document"`
	// DryRun validates and reports what would change, changing nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// DenyAll accepts a document with no rules: everything is denied.
	DenyAll bool `json:"deny_all,omitempty"`
}

// PolicyChange is what one user gains and loses with a new policy, as
// destination strings ("192.168.0.0/24:22/tcp").
type PolicyChange struct {
	User   string   `json:"user"`
	Gained []string `json:"gained,omitempty"`
	Lost   []string `json:"lost,omitempty"`
	// SSHGained and SSHLost are the principals (UNIX users) the user's
	// SSH certificates gain and lose: NetMapPolicy.SSHAs before and after.
	SSHGained []string `json:"ssh_as_gained,omitempty"`
	SSHLost   []string `json:"ssh_as_lost,omitempty"`
}

// SetPolicyResponse answers a policy edit (or a dry run of one).
type SetPolicyResponse struct {
	// Applied is false for a dry run.
	Applied  bool           `json:"applied"`
	Mode     PolicyMode     `json:"mode"`
	Changes  []PolicyChange `json:"changes,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// PolicyDecision answers GET PathPolicyWhy, and `warren why IP:PORT` on a
// laptop.
type PolicyDecision struct {
	User  string         `json:"user"`
	Dest  netip.AddrPort `json:"dest"`
	Proto Proto          `json:"proto"`
	Allow bool           `json:"allow"`
	// Rule is the index of the rule that allowed (see RuleName), 0 if
	// none did.
	Rule     int    `json:"rule,omitempty"`
	RuleText string `json:"rule_text,omitempty"`
	// Reason says the decision in one line.
	Reason string `json:"reason"`
}

// Proto is a transport protocol as policies name it.
type Proto string

// Protocols. ProtoAny matches all three.
const (
	ProtoTCP  Proto = "tcp"
	ProtoUDP  Proto = "udp"
	ProtoICMP Proto = "icmp"
	ProtoAny  Proto = "any"
)

// ParseProto accepts tcp, udp, icmp and any; empty means tcp.
func ParseProto(s string) (Proto, error) {
	switch Proto(s) {
	case "":
		return ProtoTCP, nil
	case ProtoTCP, ProtoUDP, ProtoICMP, ProtoAny:
		return Proto(s), nil
	}
	return "", fmt.Errorf("protocol %q is not one of: tcp, udp, icmp, any", s)
}

// Matches reports whether p (a grant's protocol) covers q (a flow's).
func (p Proto) Matches(q Proto) bool { return p == ProtoAny || p == q }

// PortRange is an inclusive range of ports; {0, 65535} is every port.
// Its text form is "22", "8000-8999" or "*".
type PortRange struct {
	First, Last uint16
}

// AllPorts is the range "*".
var AllPorts = PortRange{0, 65535}

// Contains reports whether port is in r.
func (r PortRange) Contains(port uint16) bool { return r.First <= port && port <= r.Last }

func (r PortRange) String() string {
	switch {
	case r == AllPorts:
		return "*"
	case r.First == r.Last:
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// ParsePortRange reads "22", "8000-8999" or "*".
func ParsePortRange(s string) (PortRange, error) {
	if s == "*" {
		return AllPorts, nil
	}
	first, last, isRange := strings.Cut(s, "-")
	a, err := parsePort(first)
	if err != nil {
		return PortRange{}, fmt.Errorf("port %q: %w", s, err)
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePort(last)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
	}
	if b < a {
		return PortRange{}, fmt.Errorf("port range %q ends before it starts", s)
	}
	return PortRange{a, b}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a port number (0-65535, a range a-b, or *)")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, fmt.Errorf("%s is not a port number (0-65535)", s)
	}
	return uint16(n), nil
}

// MarshalText implements encoding.TextMarshaler.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *PortRange) UnmarshalText(b []byte) error {
	v, err := ParsePortRange(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Grant is one destination a client may reach: addresses, ports and a
// protocol, with the rule that allows it. For ICMP the ports do not
// apply.
type Grant struct {
	Prefix netip.Prefix `json:"prefix"`
	Ports  PortRange    `json:"ports"`
	Proto  Proto        `json:"proto"`
	// Rule is the index of the allowing rule in the document: 1-based
	// for its rules, SSHRuleBase+N for its ssh rule N (see RuleName).
	Rule int `json:"rule"`
}

// Allows reports whether g lets a flow to dst:port over proto through.
func (g Grant) Allows(dst netip.Addr, port uint16, proto Proto) bool {
	if !g.Prefix.Contains(dst) || !g.Proto.Matches(proto) {
		return false
	}
	return proto == ProtoICMP || g.Ports.Contains(port)
}

// SSHRuleBase is where the indexes of a document's ssh rules begin: ssh
// rule N (1-based) is index SSHRuleBase+N wherever rules are named by
// index (Grant.Rule, PolicyRule.Index, PolicyDecision.Rule,
// FlowRecord.Rule). An ssh rule grants TCP port 22 on its destinations.
// Rules come first: a flow that both a rule and an ssh rule allow is
// reported with the rule. A document holds fewer rules than this.
const SSHRuleBase = 1_000_000

// RuleName names the rule with index i as a person reads it: "rule 3",
// "ssh rule 1" (index SSHRuleBase+1).
func RuleName(i int) string {
	if i > SSHRuleBase {
		return "ssh rule " + strconv.Itoa(i-SSHRuleBase)
	}
	return "rule " + strconv.Itoa(i)
}

// PolicyRule is one rule of the document as a person reads it. Index is
// as in Grant.Rule: RuleName(Index) names it.
type PolicyRule struct {
	Index int    `json:"index"`
	Text  string `json:"text"`
}

// NetMapPolicy is the access policy as one node sees it.
//
// A connector's netmap carries, in each client Peer's Grants, what that
// client may reach through this connector. A client's netmap carries its
// own Grants here, for `warren why`. When Enforced is false (no document)
// every client may reach every served destination and Grants are empty.
type NetMapPolicy struct {
	Enforced bool `json:"enforced"`
	// Grants are the node's own (clients only).
	Grants []Grant `json:"grants,omitempty"`
	// Rules are the rules that the Grants of this netmap name.
	Rules []PolicyRule `json:"rules,omitempty"`
	// SSHAs are the UNIX users the policy's ssh rules let this client's
	// user log in as: the principals of its SSH certificates.
	SSHAs []string `json:"ssh_as,omitempty"`
}

// Host is a named target: `warren hosts add NAME IP`. Policy rules may
// name it instead of its address.
type Host struct {
	Name      string     `json:"name"`
	Address   netip.Addr `json:"address"`
	Comment   string     `json:"comment,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// AddHostRequest is the body of POST PathHosts.
type AddHostRequest struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Comment string `json:"comment,omitempty"`
}

// Flow decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// FlowRecord is one flow the connector saw, allowed or denied.
type FlowRecord struct {
	// ID is unique per connector, so a batch sent twice is stored once.
	ID string `json:"id"`
	// Connector is filled by the coordinator from the credential.
	Connector string `json:"connector,omitempty"`
	User      string `json:"user,omitempty"`
	// Node is the client's name.
	Node  string         `json:"node"`
	Src   netip.AddrPort `json:"src"`
	Dst   netip.AddrPort `json:"dst"`
	Proto Proto          `json:"proto"`
	// Decision is DecisionAllow or DecisionDeny.
	Decision string `json:"decision"`
	// Rule is the allowing rule's index; 0 for a denial or under allow-all.
	Rule int `json:"rule,omitempty"`
	// Reason says the decision in one line.
	Reason string    `json:"reason"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// BytesUp went from the client to the LAN host, BytesDown back.
	BytesUp   uint64 `json:"bytes_up"`
	BytesDown uint64 `json:"bytes_down"`
}

// Duration is how long the flow lasted.
func (r FlowRecord) Duration() time.Duration { return r.End.Sub(r.Start) }

// MaxFlowReport bounds the records of one FlowReport.
const MaxFlowReport = 1000

// FlowReport is the body of POST PathFlowReport.
type FlowReport struct {
	Records []FlowRecord `json:"records"`
}

// Validate checks a report as the coordinator receives it.
func (r FlowReport) Validate() error {
	if len(r.Records) > MaxFlowReport {
		return fmt.Errorf("a flow report holds at most %d records, not %d", MaxFlowReport, len(r.Records))
	}
	for i, rec := range r.Records {
		switch {
		case rec.ID == "" || len(rec.ID) > 64:
			return fmt.Errorf("record %d: id must be 1 to 64 characters", i)
		case rec.Decision != DecisionAllow && rec.Decision != DecisionDeny:
			return fmt.Errorf("record %d: decision %q is not allow or deny", i, rec.Decision)
		case len(rec.Reason) > 300 || len(rec.Node) > MaxNameLen || len(rec.User) > 254:
			return fmt.Errorf("record %d: a field is too long", i)
		case rec.End.Before(rec.Start):
			return fmt.Errorf("record %d: ends before it starts", i)
		}
		if _, err := ParseProto(string(rec.Proto)); err != nil || rec.Proto == ProtoAny {
			return fmt.Errorf("record %d: protocol %q", i, rec.Proto)
		}
		// Text a connector sends reaches admins' terminals (warren flows)
		// and clients' (denials in warren status): printable only.
		for _, f := range [...]struct{ what, s string }{{"id", rec.ID}, {"node", rec.Node}, {"user", rec.User}, {"reason", rec.Reason}} {
			if err := checkRunes(f.what, f.s, false); err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
		}
	}
	return nil
}

// MaxUserLen bounds a user name (an e-mail address).
const MaxUserLen = 254

// ValidateUser accepts a user name: an e-mail-like identifier, printable
// (no UnsafeRune, valid UTF-8), without spaces, 1 to 254 characters.
func ValidateUser(u string) error {
	if u == "" {
		return fmt.Errorf("user is empty")
	}
	if len(u) > MaxUserLen {
		return fmt.Errorf("user %q is longer than %d characters", u, MaxUserLen)
	}
	for _, c := range u {
		if c <= ' ' || c == ',' || c == '"' || UnsafeRune(c) || c == utf8.RuneError {
			return fmt.Errorf("user %q may not hold spaces, commas, quotes or control characters", u)
		}
	}
	if strings.Count(u, "@") != 1 || strings.HasPrefix(u, "@") || strings.HasSuffix(u, "@") {
		return fmt.Errorf("user %q is not an e-mail address (name@domain)", u)
	}
	return nil
}
