package ctl

import (
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/warren/warren.sock"

// State is the daemon's overall state.
type State string

// Daemon states.
const (
	StateDown     State = "down"     // no tunnel; `warren up` starts it
	StateStarting State = "starting" // enrolling or connecting
	StateUp       State = "up"       // tunnel configured from a netmap
)

// Status is what `warren status` shows.
type Status struct {
	State    State     `json:"state"`
	Node     wire.Node `json:"node"`
	Enrolled bool      `json:"enrolled"`
	// Mode is how the daemon carries traffic: a TUN device and kernel
	// routes, or a userspace stack behind local proxies and `warren nc`.
	Mode Mode `json:"mode"`
	// Proxies are the listen addresses of the local proxies the daemon
	// serves (userspace mode), empty for those it does not.
	Proxies Proxies `json:"proxies,omitzero"`
	// Interface is the TUN device's name while up (TUN mode).
	Interface   string      `json:"interface,omitempty"`
	Coordinator Coordinator `json:"coordinator"`
	Relay       Relay       `json:"relay"`
	// NetMapVersion is the version of the netmap applied.
	NetMapVersion uint64        `json:"netmap_version"`
	Peers         []PeerStatus  `json:"peers"`
	Routes        []RouteStatus `json:"routes"`
	// Policy is the access policy as the applied netmap states it; its
	// Mode is empty before the first netmap. The user this node belongs
	// to is Node.User.
	Policy PolicyStatus `json:"policy"`
	// Inbound is the filter that lets connectors reach this machine only
	// with answers to the flows it opened.
	Inbound Inbound `json:"inbound"`
	// Denials are the last flows of this node that connectors refused,
	// newest first (at most MaxDenials).
	Denials []Denial `json:"denials,omitempty"`
	// SSH is this node's SSH access: whom its user may log in as, and
	// the certificates the daemon keeps renewed.
	SSH SSHStatus `json:"ssh"`
	// Warnings are things a person should look at, one line each.
	Warnings []string `json:"warnings,omitempty"`
}

// Mode is how the daemon carries traffic.
type Mode string

// Daemon modes.
const (
	// ModeTUN: `warren daemon` as root, a TUN device and kernel routes.
	ModeTUN Mode = "tun"
	// ModeUserspace: `warren daemon --userspace`, no root: a userspace
	// stack reached through the local proxies and `warren nc`.
	ModeUserspace Mode = "userspace"
)

// Proxies are the local proxies' listen addresses ("" when off).
type Proxies struct {
	SOCKS5 string `json:"socks5,omitempty"`
	HTTP   string `json:"http,omitempty"`
}

// PolicyStatus is the access policy as this node sees it.
type PolicyStatus struct {
	Mode wire.PolicyMode `json:"mode,omitempty"`
	// Grants counts the destinations the policy lets this node reach
	// (enforced mode only).
	Grants int `json:"grants"`
}

// Inbound is the state of the laptop's inbound filter.
type Inbound struct {
	// Flows is how many flows this machine opened are remembered.
	Flows int `json:"flows"`
	// Dropped counts the packets from connectors that answered none.
	Dropped uint64 `json:"dropped"`
}

// MaxDenials is how many denials Status keeps.
const MaxDenials = 20

// Denial is a flow of this node that a connector refused.
type Denial struct {
	// At is when the connector refused it (the last time, if Count > 1).
	At        time.Time      `json:"at"`
	Dest      netip.AddrPort `json:"dest"`
	Proto     wire.Proto     `json:"proto"`
	Connector string         `json:"connector,omitempty"`
	Reason    string         `json:"reason"`
	// Count is how many such refusals in a row this entry stands for.
	Count int `json:"count"`
}

// Coordinator is the state of the control connection.
type Coordinator struct {
	URL       string `json:"url,omitempty"`
	Connected bool   `json:"connected"`
	// Error is why the last attempt failed, while not connected.
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// Relay is the state of this node's registration at the relay.
type Relay struct {
	Endpoint  string `json:"endpoint,omitempty"`
	Connected bool   `json:"connected"`
	// Observed is this node's address as the relay sees it (its NAT's).
	Observed string `json:"observed,omitempty"`
	// Refusal is the relay's last refusal, if any, in words.
	Refusal string `json:"refusal,omitempty"`
}

// PeerStatus describes one peer of the tunnel.
type PeerStatus struct {
	Name    string     `json:"name"`
	Role    wire.Role  `json:"role"`
	Address netip.Addr `json:"address"`
	Online  bool       `json:"online"`
	// Path is how datagrams reach the peer: "relay", "direct" or "none".
	Path          string    `json:"path"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
}

// RouteStatus says whether traffic for a prefix goes through the tunnel,
// and why not when it does not.
type RouteStatus struct {
	Prefix    netip.Prefix `json:"prefix"`
	Connector string       `json:"connector"`
	Live      bool         `json:"live"`
	Reason    string       `json:"reason"`
}

// UpRequest asks the daemon to bring the tunnel up.
type UpRequest struct {
	// Token enrolls the node if it is not enrolled yet.
	Token string `json:"token,omitempty"`
	// Coordinator and Pin, without a Token, enroll a node that is not
	// enrolled yet by single sign-on: the daemon starts a login there
	// and a person logs in in a browser. Pin is the SHA-256 of the
	// coordinator's certificate in hex, empty for a CA-issued one.
	// `warren login` may leave them empty to use the last ones given.
	Coordinator string `json:"coordinator,omitempty"`
	Pin         string `json:"pin,omitempty"`
}

// Progress is one step of `warren up`, streamed as it happens.
type Progress struct {
	// Message is one line for a person: "enrolling", "connected to …".
	Message string `json:"message"`
	// LoginURL and Code are set on the step that asks a person to log
	// in: open LoginURL in a browser and check the page shows Code.
	LoginURL string `json:"login_url,omitempty"`
	Code     string `json:"code,omitempty"`
	// Done is set on the last message; Error then says why it failed.
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

// LogoutResult says what `warren logout` did.
type LogoutResult struct {
	// Node is the name the node had.
	Node string `json:"node"`
	// Removed says the coordinator removed the node; when it could not
	// be reached, Error says why and an admin should remove it.
	Removed bool   `json:"removed"`
	Error   string `json:"error,omitempty"`
}

// WhyQuery is what `warren why` asks about: an address, and a port and
// protocol if the question is about one flow.
type WhyQuery struct {
	IP netip.Addr
	// Host, when IP is not given, is a name the daemon resolves as it
	// resolves names it dials (the netmap's names first); the answer is
	// about its first address.
	Host string
	// Port is set with HasPort. Proto is empty unless given: a port alone
	// means TCP; "icmp" alone asks about pings.
	Port    uint16
	HasPort bool
	Proto   wire.Proto
}

// Flow reports whether q names one flow (a port, or ICMP), and which.
func (q WhyQuery) Flow() (port uint16, proto wire.Proto, ok bool) {
	switch {
	case q.Proto == wire.ProtoICMP:
		return 0, wire.ProtoICMP, true
	case !q.HasPort:
		return 0, "", false
	case q.Proto == "":
		return q.Port, wire.ProtoTCP, true
	}
	return q.Port, q.Proto, true
}

// Why answers `warren why IP[:PORT][/PROTO]`: what this machine does with
// one address, and what the access policy says about it.
type Why struct {
	IP        netip.Addr `json:"ip"`
	Tunnelled bool       `json:"tunnelled"`
	// Route and Connector name the route covering IP, if any.
	Route     netip.Prefix `json:"route,omitzero"`
	Connector string       `json:"connector,omitempty"`
	// Entry is the split-tunnel entry that decided, if any.
	Entry netip.Prefix `json:"entry,omitzero"`
	// Reason says it in one line.
	Reason string `json:"reason"`
	// LocalLAN names this machine's directly connected prefix that also
	// holds IP, if any, and what wins.
	LocalLAN string `json:"local_lan,omitempty"`
	// PolicyMode is the access policy's mode in the applied netmap.
	PolicyMode wire.PolicyMode `json:"policy_mode,omitempty"`
	// Policy is the access policy's decision for the flow asked about;
	// nil when the question named no flow (no port) or IP is not
	// tunnelled (the policy applies at the connector only).
	Policy *wire.PolicyDecision `json:"policy,omitempty"`
	// PolicyReason says in one line what the access policy lets this
	// node reach at IP (Policy.Reason when a flow was asked about);
	// empty when IP is not tunnelled.
	PolicyReason string `json:"policy_reason,omitempty"`
}

// Prefs are the daemon's settings.
type Prefs struct {
	// LANWins lets this machine's LANs win over tunnelled prefixes that
	// overlap them; by default the tunnel wins.
	LANWins bool `json:"lan_wins"`
	// Operator is the local user who may, besides root, read the status
	// and get SSH certificates for themselves; nil when none is set.
	Operator *Operator `json:"operator,omitempty"`
}

// Operator is a local user, by name and uid.
type Operator struct {
	Name string `json:"name"`
	UID  uint32 `json:"uid"`
}

// PrefsEdit changes some settings; nil fields stay as they are.
type PrefsEdit struct {
	LANWins *bool `json:"lan_wins,omitempty"`
	// Operator names the operator (a user name or a numeric uid); ""
	// clears it. Only root may set it.
	Operator *string `json:"operator,omitempty"`
}

// Paths of the control API.
const (
	pathPrefs  = "/v1/prefs"
	pathWhy    = "/v1/why"
	pathStatus = "/v1/status"
	pathUp     = "/v1/up"
	pathDown   = "/v1/down"
	pathLogin  = "/v1/login"
	pathLogout = "/v1/logout"
	// pathSSHCert asks for an SSH certificate: POST SSHCertRequest,
	// SSHCertResult.
	pathSSHCert = "/v1/ssh-cert"
	// pathDial opens a connection through the daemon (dial.go).
	pathDial = "/v1/dial"
)
