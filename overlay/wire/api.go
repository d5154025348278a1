package wire

import (
	"fmt"
	"net/netip"
	"time"
)

// Role is what an enrolled node does.
type Role string

// The roles. RoleAdmin is held only by admin tokens, never by a node.
const (
	RoleClient    Role = "client"
	RoleConnector Role = "connector"
	RoleAdmin     Role = "admin"
)

// Validate accepts the roles a node may enroll as.
func (r Role) Validate() error {
	switch r {
	case RoleClient, RoleConnector:
		return nil
	}
	return fmt.Errorf("role %q is not one of: client, connector", string(r))
}

// API paths. Node and admin calls carry "Authorization: Bearer SECRET".
const (
	PathEnroll      = "/v1/enroll"
	PathStream      = "/v1/stream"
	PathTokens      = "/v1/admin/tokens"
	PathRoutes      = "/v1/admin/routes"
	PathRouteLookup = "/v1/admin/routes/lookup"
	PathNodes       = "/v1/admin/nodes"
	PathExport      = "/v1/admin/export"
	PathHealth      = "/v1/health"
)

// Error is the body of every non-2xx response.
type Error struct {
	// Message is one lowercase line, fit to show a person as is.
	Message string `json:"error"`
	// Code lets programs branch: one of the Code* constants.
	Code string `json:"code"`
}

// Error codes.
const (
	CodeInvalid      = "invalid"       // bad input; nothing changed
	CodeNotFound     = "not_found"     // no such token, route or node
	CodeConflict     = "conflict"      // clashes with existing state
	CodeUnauthorized = "unauthorized"  // missing, wrong, revoked or expired credential
	CodeInternal     = "internal"      // the coordinator's fault
	CodeUnavailable  = "unavailable"   // shutting down
	CodeTokenUsed    = "token_used"    // single-use token already consumed
	CodeTokenExpired = "token_expired" // token past its expiry
	CodeTokenRevoked = "token_revoked" // token revoked by an admin
	CodeRateLimited  = "rate_limited"  // too many requests without a credential; see Retry-After
)

func (e *Error) Error() string { return e.Message }

// CreateTokenRequest is the body of POST PathTokens.
type CreateTokenRequest struct {
	Role     Role   `json:"role"`
	Name     string `json:"name"`
	Reusable bool   `json:"reusable,omitempty"`
	// ExpiresIn is how long the token stays valid; zero means never.
	ExpiresIn Duration `json:"expires_in,omitempty"`
	// User is the person whose devices the token enrolls (clients only).
	User string `json:"user,omitempty"`
}

// Validate checks the request.
func (r CreateTokenRequest) Validate() error {
	if err := r.Role.Validate(); err != nil {
		return err
	}
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if r.ExpiresIn < 0 {
		return fmt.Errorf("expiry %v is negative", time.Duration(r.ExpiresIn))
	}
	if r.User != "" {
		if r.Role != RoleClient {
			return fmt.Errorf("only client tokens belong to a user; connectors have none")
		}
		if err := ValidateUser(r.User); err != nil {
			return err
		}
	}
	return nil
}

// CreateTokenResponse answers POST PathTokens.
type CreateTokenResponse struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// TokenState summarises whether a token can still enroll.
type TokenState string

// Token states.
const (
	TokenActive  TokenState = "active"
	TokenUsed    TokenState = "used"
	TokenExpired TokenState = "expired"
	TokenRevoked TokenState = "revoked"
)

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Reusable  bool       `json:"reusable"`
	Uses      int        `json:"uses"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
	// User is the person the token enrolls devices for, if any.
	User string `json:"user,omitempty"`
}

// State reports the token's state at now.
func (t TokenInfo) State(now time.Time) TokenState {
	switch {
	case t.Revoked:
		return TokenRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return TokenExpired
	case !t.Reusable && t.Uses > 0:
		return TokenUsed
	}
	return TokenActive
}

// EnrollRequest is the body of POST PathEnroll, authorised by a token secret.
type EnrollRequest struct {
	// PublicKey is the node's WireGuard public key; the private key never
	// leaves the node.
	PublicKey Key `json:"public_key"`
	// Hostname is informational; the node's name comes from the token.
	Hostname string `json:"hostname,omitempty"`
}

// Validate checks the request.
func (r EnrollRequest) Validate() error {
	if r.PublicKey.IsZero() {
		return fmt.Errorf("public key is missing")
	}
	return ValidateText("hostname", r.Hostname, MaxHostnameLen)
}

// EnrollResponse answers a successful enrollment.
type EnrollResponse struct {
	Node Node `json:"node"`
	// Credential authenticates the node's control stream from now on.
	Credential string `json:"credential"`
}

// Node is one enrolled device as peers and the node itself see it.
type Node struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	PublicKey Key        `json:"public_key"`
	Address   netip.Addr `json:"address"`
	// User is the person a client belongs to (from its token); empty for
	// connectors and for clients enrolled without one.
	User string `json:"user,omitempty"`
}

// NodeStatus is a row of `warren nodes ls`.
type NodeStatus struct {
	Node
	EnrolledAt time.Time  `json:"enrolled_at"`
	Online     bool       `json:"online"`
	LastSeen   *time.Time `json:"last_seen,omitempty"`
	// AppliedVersion is the netmap version the node last acknowledged.
	AppliedVersion uint64 `json:"applied_version"`
	// InSync reports whether the node acknowledged the last netmap the
	// coordinator sent it. A change that does not affect a node sends it
	// nothing, so AppliedVersion may trail the state version while InSync.
	InSync bool `json:"in_sync"`
}

// Route sends a prefix to the connector that serves it.
type Route struct {
	Prefix    netip.Prefix `json:"prefix"`
	Connector string       `json:"connector"`
	Comment   string       `json:"comment,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	// ProxyProtocol makes the connector prepend a PROXY v2 header, with
	// the client's overlay address and user, to each TCP flow.
	ProxyProtocol bool `json:"proxy_protocol,omitempty"`
	// AllowConnectorHost lets flows to this prefix reach the connector
	// host's own addresses, which the connector otherwise refuses.
	// Loopback and the rest of the destination guard stay refused.
	AllowConnectorHost bool `json:"allow_connector_host,omitempty"`
}

// AddRouteRequest is the body of POST PathRoutes.
type AddRouteRequest struct {
	// Prefix is the CIDR as the admin typed it; the coordinator validates it.
	Prefix    string `json:"prefix"`
	Connector string `json:"connector"`
	Comment   string `json:"comment,omitempty"`
	// ProxyProtocol, AllowConnectorHost: see Route. Adding a route again
	// sets both as the request says.
	ProxyProtocol      bool `json:"proxy_protocol,omitempty"`
	AllowConnectorHost bool `json:"allow_connector_host,omitempty"`
	// Force adds a prefix that takes traffic from another connector (it
	// lies inside a shorter route of that connector's); without it the
	// coordinator refuses such a prefix.
	Force bool `json:"force,omitempty"`
}

// RouteLookup answers GET PathRouteLookup?ip=IP.
type RouteLookup struct {
	IP netip.Addr `json:"ip"`
	// Route is the longest matching route, if any.
	Route *Route `json:"route,omitempty"`
	// Online reports whether Route's connector holds a control stream.
	Online bool `json:"online"`
	// Reason explains the answer in one line.
	Reason string `json:"reason"`
}

// Export is every durable fact the coordinator holds, secrets excluded.
type Export struct {
	Version uint64      `json:"version"`
	Tokens  []TokenInfo `json:"tokens"`
	Nodes   []Node      `json:"nodes"`
	Routes  []Route     `json:"routes"`
	Split   SplitPolicy `json:"split"`
	Hosts   []Host      `json:"hosts"`
	// Policy is the access-policy document as set, empty in allow-all.
	Policy string `json:"policy,omitempty"`
	// Users are the people who logged in by single sign-on (refresh
	// tokens excluded).
	Users []User `json:"users,omitempty"`
	// DNS are the split-DNS domains, sorted by domain.
	DNS []DNSDomain `json:"dns,omitempty"`
}

// MaxNameLen bounds token and node names.
const MaxNameLen = 63

// ValidateName accepts DNS-label-like names: lowercase letters, digits and
// inner hyphens, 1 to 63 characters.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("name %q is longer than %d characters", name, MaxNameLen)
	}
	for i, c := range name {
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0 && i < len(name)-1
		if !ok {
			return fmt.Errorf("name %q may hold only lowercase letters, digits and inner hyphens", name)
		}
	}
	return nil
}

// Duration is a time.Duration that reads and writes as Go duration text
// ("24h0m0s") in JSON.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", string(b), err)
	}
	*d = Duration(v)
	return nil
}

// Split-tunnel admin paths.
const (
	PathSplit          = "/v1/admin/split"           // GET: SplitPolicy
	PathSplitMode      = "/v1/admin/split/mode"      // POST SplitModeRequest
	PathSplitEntries   = "/v1/admin/split/entries"   // POST SplitEntryRequest; DELETE …/ADDR/BITS
	PathSplitReset     = "/v1/admin/split/reset"     // POST
	PathSplitEffective = "/v1/admin/split/effective" // GET: SplitEffective
)

// SplitModeRequest switches the split-tunnel mode. Each mode keeps its
// list.
type SplitModeRequest struct {
	Mode SplitMode `json:"mode"`
}

// SplitEntryRequest adds a prefix to the list of the current mode.
type SplitEntryRequest struct {
	// Prefix is the CIDR as the admin typed it.
	Prefix  string `json:"prefix"`
	Comment string `json:"comment,omitempty"`
}

// SplitEditResponse answers every split-tunnel edit: the policy now, and
// warnings such as an exclude that shadows a route.
type SplitEditResponse struct {
	Policy   SplitPolicy `json:"policy"`
	Warnings []string    `json:"warnings,omitempty"`
}

// SplitDecision is one prefix of routed space and what a client does with
// it.
type SplitDecision struct {
	Prefix    netip.Prefix `json:"prefix"`
	Connector string       `json:"connector"`
	Reason    string       `json:"reason"`
}

// SplitEffective is what a client would tunnel under the current policy
// and routes, and why.
type SplitEffective struct {
	Mode     SplitMode       `json:"mode"`
	Tunnel   []SplitDecision `json:"tunnel"`
	Bypass   []SplitDecision `json:"bypass"`
	Warnings []string        `json:"warnings,omitempty"`
}
