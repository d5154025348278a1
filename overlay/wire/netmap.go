package wire

import (
	"fmt"
	"net/netip"
	"time"
)

// NetMap is everything one node needs to know, as of Version. The
// coordinator sends a whole NetMap on connect and on every change that
// affects the node; the node acknowledges the Version it applied.
type NetMap struct {
	// Version increases with every change to the coordinator's state.
	Version uint64 `json:"version"`
	Self    Node   `json:"self"`
	// Peers are the nodes this node may talk to: a client sees every
	// connector, a connector sees every client.
	Peers  []Peer      `json:"peers"`
	Routes []Route     `json:"routes"`
	Relay  Relay       `json:"relay"`
	Split  SplitPolicy `json:"split"`
	// Policy is the access policy as this node needs it.
	Policy NetMapPolicy `json:"policy"`
	// Hosts are the named hosts (`warren hosts add`), sorted by name;
	// clients only. A client resolves these names itself before it asks
	// the system's resolver (warren nc, the proxies).
	Hosts []NetMapHost `json:"hosts,omitempty"`
	// HostSuffix is the domain under which the named hosts also resolve
	// (NAME.SUFFIX; `warren coordinator --host-suffix`); clients only.
	HostSuffix string `json:"host_suffix,omitempty"`
	// DNS are the split-DNS domains (`warren dns add`), sorted by
	// domain; clients only. Names under a domain are resolved by its
	// servers, through the tunnel.
	DNS []NetMapDNS `json:"dns,omitempty"`
}

// NetMapHost is a named host as a client's netmap carries it.
type NetMapHost struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address"`
}

// Peer is another node with what it serves.
type Peer struct {
	Node
	// Prefixes are the routes this peer serves (connectors only), sorted.
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Online   bool           `json:"online"`
	// Grants are what this client may reach through the connector whose
	// netmap this is (connectors' netmaps only, when the policy is
	// enforced), limited to the prefixes it serves.
	Grants []Grant `json:"grants,omitempty"`
}

// Relay tells a node where the coordinator's relay listens and how to
// authenticate to it.
type Relay struct {
	// Endpoint is host:port of the relay's UDP socket.
	Endpoint string `json:"endpoint,omitempty"`
	// Credential proves the node's identity to the relay.
	Credential string `json:"credential,omitempty"`
}

// SplitMode chooses how the split-tunnel lists are read.
type SplitMode string

// Split-tunnel modes.
const (
	// SplitExclude tunnels every routed prefix except the exclude list.
	SplitExclude SplitMode = "exclude"
	// SplitInclude tunnels only what the include list names.
	SplitInclude SplitMode = "include"
)

// SplitEntry is one prefix of a split-tunnel list.
type SplitEntry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Comment string       `json:"comment,omitempty"`
	// Builtin marks an entry of the default exclude list, as opposed to
	// one an admin wrote. A routed prefix is carved out of builtin
	// excludes automatically; only an admin's exclude can shadow a route.
	Builtin bool `json:"builtin,omitempty"`
}

// SplitPolicy is the admin's split-tunnel setting. Each mode keeps its own
// list, so switching modes loses nothing.
type SplitPolicy struct {
	Mode    SplitMode    `json:"mode"`
	Include []SplitEntry `json:"include"`
	Exclude []SplitEntry `json:"exclude"`
}

// StreamMessage is one line of the control stream, in either direction.
type StreamMessage struct {
	Type MessageType `json:"type"`
	// NetMap is set on MsgNetMap (coordinator → node).
	NetMap *NetMap `json:"netmap,omitempty"`
	// Version is set on MsgAck (node → coordinator).
	Version uint64 `json:"version,omitempty"`
	// Denial is set on MsgDenial (coordinator → client): a connector
	// refused one of this client's flows.
	Denial *FlowRecord `json:"denial,omitempty"`
}

// MessageType names a control stream message.
type MessageType string

// Control stream message types.
const (
	MsgNetMap MessageType = "netmap" // coordinator → node: the node's netmap
	MsgAck    MessageType = "ack"    // node → coordinator: Version applied
	MsgPing   MessageType = "ping"   // either way: heartbeat
	MsgDenial MessageType = "denial" // coordinator → client: a connector refused a flow
)

// Validate checks a message read from the stream.
func (m StreamMessage) Validate() error {
	switch m.Type {
	case MsgNetMap:
		if m.NetMap == nil {
			return fmt.Errorf("netmap message without a netmap")
		}
	case MsgDenial:
		if m.Denial == nil {
			return fmt.Errorf("denial message without a record")
		}
	case MsgAck, MsgPing:
	default:
		return fmt.Errorf("unknown message type %q", string(m.Type))
	}
	return nil
}

// Heartbeat timing of the control stream. Each end sends a ping every
// HeartbeatInterval and gives up on a stream silent for HeartbeatTimeout.
const (
	HeartbeatInterval = 10 * time.Second
	HeartbeatTimeout  = 30 * time.Second
)
