package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMTU            = 1280
	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultMaxInFlightTCP = 1024
	DefaultMaxUDPFlows    = 8192
	DefaultMaxPings       = 256
)

// Limits on Config.MTU. IPv6 needs at least 1280 and the stack always
// routes IPv6; an IP packet cannot exceed 65535 bytes.
const (
	minMTU = 1280
	maxMTU = 65535
)

// Config configures a Stack. The zero value of every field but Handler
// selects its default.
type Config struct {
	// MTU is the tunnel MTU: the largest IP packet Read returns and Write
	// accepts. gVisor derives the TCP MSS it advertises from it (MTU-40 for
	// IPv4, MTU-60 for IPv6), which is how flows through the tunnel are
	// MSS-clamped. Default 1280; 1280..65535.
	MTU int

	// Addresses are the node's own overlay addresses. The stack answers
	// pings to them itself; TCP and UDP to them go to Handler like any other
	// flow. May be empty.
	Addresses []netip.Addr

	// Handler receives every flow. Required.
	Handler FlowHandler

	// Logger receives the stack's logs; per-packet and per-flow problems are
	// rate-limited. Default: discard.
	Logger *slog.Logger

	// UDPIdleTimeout closes a UDP flow's conn after this long without a
	// datagram in either direction. Default 60 s, long enough for DNS
	// retries and most request/response protocols.
	UDPIdleTimeout time.Duration

	// MaxInFlightTCP bounds the TCP handshakes in progress: SYNs whose
	// HandleTCP has neither called accept nor returned. Further SYNs are
	// dropped (the client retransmits), so a SYN flood costs at most this
	// many goroutines. Default 1024.
	MaxInFlightTCP int

	// MaxInFlightTCPPerSource bounds the handshakes in progress from one
	// source address, so one client cannot take every slot. Default 2/3 of
	// MaxInFlightTCP (at least 1).
	MaxInFlightTCPPerSource int

	// MaxUDPFlows bounds the live UDP flows; a datagram that would open one
	// more is dropped. Default 8192.
	MaxUDPFlows int

	// MaxPings bounds the HandlePing calls in progress; further echo
	// requests are dropped. Default 256.
	MaxPings int
}

// Validate reports the first problem with c. Zero values are valid (they
// select defaults).
func (c *Config) Validate() error {
	if c.Handler == nil {
		return errors.New("netstack config: a flow handler is required")
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU) {
		return fmt.Errorf("netstack config: mtu %d outside %d..%d", c.MTU, minMTU, maxMTU)
	}
	for _, a := range c.Addresses {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("netstack config: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max in-flight tcp", c.MaxInFlightTCP},
		{"max in-flight tcp per source", c.MaxInFlightTCPPerSource},
		{"max udp flows", c.MaxUDPFlows},
		{"max pings", c.MaxPings},
	} {
		if f.v < 0 {
			return fmt.Errorf("netstack config: %s is negative (%d)", f.name, f.v)
		}
	}
	if c.UDPIdleTimeout < 0 {
		return fmt.Errorf("netstack config: udp idle timeout is negative (%v)", c.UDPIdleTimeout)
	}
	return nil
}

// checkAddr reports why a cannot be one of the stack's own addresses.
func checkAddr(a netip.Addr) error {
	if !a.IsValid() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
		return fmt.Errorf("address %v is not a unicast IPv4 or IPv6 address", a)
	}
	if a.Zone() != "" {
		return fmt.Errorf("address %v has a zone", a)
	}
	return nil
}

// withDefaults returns c with its zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if c.MaxInFlightTCP == 0 {
		c.MaxInFlightTCP = DefaultMaxInFlightTCP
	}
	if c.MaxInFlightTCPPerSource == 0 {
		c.MaxInFlightTCPPerSource = max(1, c.MaxInFlightTCP*2/3)
	}
	if c.MaxUDPFlows == 0 {
		c.MaxUDPFlows = DefaultMaxUDPFlows
	}
	if c.MaxPings == 0 {
		c.MaxPings = DefaultMaxPings
	}
	c.Addresses = append([]netip.Addr(nil), c.Addresses...)
	return c
}

// Proto is the transport protocol of a Flow.
type Proto uint8

// The protocols a Flow can carry. ProtoICMP covers ICMPv4 and ICMPv6 echo;
// the addresses tell which.
const (
	ProtoICMP Proto = 1
	ProtoTCP  Proto = 6
	ProtoUDP  Proto = 17
)

func (p Proto) String() string {
	switch p {
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	default:
		return fmt.Sprintf("proto(%d)", uint8(p))
	}
}

// Flow identifies a flow as the client sent it: Src is the client's
// overlay address and port, Dst the address and port it asked for (any
// address, not only the node's own). For ICMP the ports are zero.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    Proto
}

func (f Flow) String() string {
	if f.Proto == ProtoICMP {
		return fmt.Sprintf("%v %v->%v", f.Proto, f.Src.Addr(), f.Dst.Addr())
	}
	return fmt.Sprintf("%v %v->%v", f.Proto, f.Src, f.Dst)
}

// LogValue makes a Flow log as one string.
func (f Flow) LogValue() slog.Value { return slog.StringValue(f.String()) }

// PingVerdict is a FlowHandler's answer to an echo request.
type PingVerdict uint8

// Ping verdicts.
const (
	// PingDrop sends nothing back: the real host did not answer.
	PingDrop PingVerdict = iota
	// PingReply answers the client with an echo reply from the flow's
	// destination: the real host answered.
	PingReply
	// PingProhibited answers the client with an ICMP destination
	// unreachable, administratively prohibited (see Prohibiter): the
	// handler refuses the flow.
	PingProhibited
)

func (v PingVerdict) String() string {
	switch v {
	case PingDrop:
		return "drop"
	case PingReply:
		return "reply"
	case PingProhibited:
		return "prohibited"
	default:
		return fmt.Sprintf("verdict(%d)", uint8(v))
	}
}

// Prohibiter is what HandleUDP's conn also offers, for a handler that
// refuses the flow.
//
// Prohibit answers the datagram that opened the flow with an ICMP
// destination unreachable, administratively prohibited (ICMPv4 type 3
// code 13, ICMPv6 type 1 code 1), sent from the flow's destination and
// quoting that datagram's IP header and first 8 bytes of its payload (its
// UDP header), as RFC 792 and RFC 4443 ask; then it closes the flow, as
// Close does. Datagrams already queued on the flow are dropped, and the
// flow's next datagram opens a new flow (and a new HandleUDP call), which
// the handler refuses again. Prohibit never blocks: when the queue toward
// the tunnel is full the message is dropped and counted. Calls after the
// first, or after Close, do nothing.
type Prohibiter interface {
	Prohibit()
}

// BatchReader is what HandleUDP's conn also offers: ReadBatch blocks for
// the next datagram as Read does, then takes as many more as are already
// queued, up to len(bufs), one per buffer, with their lengths in sizes.
type BatchReader interface {
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
}

// FlowHandler decides what happens to the flows the stack terminates. The
// stack applies no policy of its own: admission is the handler's job.
//
// Every method runs in a goroutine the Stack owns and waits for on Close;
// ctx is done once Close starts, and a handler must return promptly after
// that. Methods are called concurrently, for different flows.
type FlowHandler interface {
	// HandleTCP is called once per inbound SYN, before the handshake
	// completes. It should dial the real destination first; on success it
	// calls accept, which completes the handshake with the client and
	// returns the tunnel side of the flow. Returning without calling accept
	// refuses the flow: the client gets a RST. accept fails if the client
	// gave up meanwhile or the stack closed; it may be called at most once.
	//
	// Until accept returns, the flow holds one of MaxInFlightTCP handshake
	// slots, so dial with a timeout. The conn supports CloseWrite (see
	// Proxy) and is closed by the stack when HandleTCP returns.
	HandleTCP(ctx context.Context, f Flow, accept func() (net.Conn, error))

	// HandleUDP is called for the first datagram of a new UDP flow (a new
	// src/dst pair). conn delivers that datagram and the later ones of the
	// flow, one per Read (a datagram longer than the buffer is truncated),
	// and each Write sends one datagram back to the client from f.Dst. The
	// stack closes conn after UDPIdleTimeout without traffic either way,
	// and when HandleUDP returns; the next datagram then opens a new flow.
	// conn is also a BatchReader and a Prohibiter: a handler that refuses
	// the flow calls Prohibit before it returns, so the client learns at
	// once (a handler that just returns drops the flow silently).
	HandleUDP(ctx context.Context, f Flow, conn net.Conn)

	// HandlePing is called for an ICMP or ICMPv6 echo request to an address
	// that is not one of the node's own, with the echo data (payload is the
	// handler's to keep). PingReply makes the stack answer the client with
	// an echo reply from f.Dst carrying the same identifier, sequence
	// number and data; PingProhibited with an ICMP administratively
	// prohibited quoting the request (as Prohibiter's); PingDrop (or any
	// other value) drops the request. The handler is expected to have
	// pinged the real host before it says PingReply, so it may take as long
	// as a ping does.
	HandlePing(ctx context.Context, f Flow, payload []byte) PingVerdict
}
