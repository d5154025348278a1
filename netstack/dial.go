package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// The originating direction: the laptop's userspace mode.
//
// A local Stack is an ordinary host on the tunnel. It owns the node's
// overlay addresses (SetAddresses), and DialTCP and DialUDP open flows
// from them to any destination, which leave through Read toward
// wireguard-go. It terminates nothing: its NIC is neither promiscuous nor
// spoofing and there is no forwarder, so a packet from the tunnel reaches
// only the sockets this Stack opened. Anything else is refused the way a
// host without listeners refuses it: a TCP segment to one of our
// addresses that matches no socket gets a RST, a UDP datagram an ICMP
// port unreachable; a packet for an address we do not own is dropped
// (we do not forward); an echo request is dropped before gVisor sees it,
// so the far side cannot even probe the laptop.

// ErrNoAddress is returned by DialTCP and DialUDP when the Stack owns no
// address of the destination's family to dial from.
var ErrNoAddress = errors.New("no local address of that ip family")

// LocalConfig configures a Stack made by NewLocal. Zero values select the
// defaults of Config.
type LocalConfig struct {
	// MTU is the tunnel MTU, as Config.MTU.
	MTU int
	// Addresses are the node's overlay addresses, if known already; see
	// SetAddresses.
	Addresses []netip.Addr
	// Logger receives the stack's logs. Default: discard.
	Logger *slog.Logger
}

// NewLocal builds a Stack that owns cfg.Addresses and dials out through
// the tunnel (DialTCP, DialUDP) instead of terminating flows to every
// address. It is a tun.Device like New's, up at once.
func NewLocal(cfg LocalConfig) (*Stack, error) {
	c := Config{MTU: cfg.MTU, Logger: cfg.Logger, Handler: noHandler{}}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := build(c.withDefaults())
	s.local = true
	if err := s.configureLocal(); err != nil {
		s.destroy()
		return nil, err
	}
	if err := s.SetAddresses(cfg.Addresses); err != nil {
		s.destroy()
		return nil, err
	}
	s.events <- tun.EventUp
	return s, nil
}

// noHandler stands in for the FlowHandler a local Stack never calls: it
// has no forwarder and intercepts no pings.
type noHandler struct{}

func (noHandler) HandleTCP(context.Context, Flow, func() (net.Conn, error)) {}
func (noHandler) HandleUDP(context.Context, Flow, net.Conn)                 {}
func (noHandler) HandlePing(context.Context, Flow, []byte) PingVerdict      { return PingDrop }

// configureLocal sets up the NIC, the default routes and the TCP options:
// no promiscuous mode, no spoofing, no forwarders.
func (s *Stack) configureLocal() error {
	if err := s.ipstack.CreateNIC(nicID, s.link); err != nil {
		return fmt.Errorf("creating the nic: %w", convertErr(err))
	}
	s.ipstack.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return setTCPOptions(s.ipstack)
}

// SetAddresses makes addrs the local Stack's own addresses: those it
// dials from and accepts answers for. It adds the new ones before it
// removes the old, so a flow from an address that stays is untouched;
// flows from a removed address fail. It is idempotent. A Stack made by
// New refuses (its addresses are fixed).
func (s *Stack) SetAddresses(addrs []netip.Addr) error {
	if !s.local {
		return errors.New("netstack: the addresses of a terminating stack are fixed at New")
	}
	want := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("netstack: %w", err)
		}
		if !slices.Contains(want, a) {
			want = append(want, a)
		}
	}
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	var errs []error
	for _, a := range want {
		if slices.Contains(s.addrs, a) {
			continue
		}
		if err := s.ipstack.AddProtocolAddress(nicID, protocolAddress(a), stack.AddressProperties{}); err != nil {
			errs = append(errs, fmt.Errorf("adding address %v: %w", a, convertErr(err)))
			continue
		}
		s.addrs = append(s.addrs, a)
	}
	s.addrs = slices.DeleteFunc(s.addrs, func(a netip.Addr) bool {
		if slices.Contains(want, a) {
			return false
		}
		if err := s.ipstack.RemoveAddress(nicID, tcpip.AddrFromSlice(a.AsSlice())); err != nil {
			errs = append(errs, fmt.Errorf("removing address %v: %w", a, convertErr(err)))
			return false
		}
		return true
	})
	return errors.Join(errs...)
}

// Addresses returns the addresses a local Stack owns now.
func (s *Stack) Addresses() []netip.Addr {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return slices.Clone(s.addrs)
}

// protocolAddress is a as gVisor adds it to the NIC: a host address.
func protocolAddress(a netip.Addr) tcpip.ProtocolAddress {
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
}

// dialTarget checks that the Stack can dial dst and returns it as gVisor
// takes it.
func (s *Stack) dialTarget(network string, dst netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: netAddr(network, dst), Err: err}
	}
	if !s.local {
		return tcpip.FullAddress{}, 0, opErr(errors.New("a terminating stack does not dial"))
	}
	if s.closing.Load() {
		return tcpip.FullAddress{}, 0, opErr(ErrClosed)
	}
	a := dst.Addr().Unmap()
	if !a.IsValid() || a.IsUnspecified() || dst.Port() == 0 {
		return tcpip.FullAddress{}, 0, opErr(fmt.Errorf("cannot dial %v", dst))
	}
	s.addrMu.Lock()
	ok := slices.ContainsFunc(s.addrs, func(o netip.Addr) bool { return o.Is4() == a.Is4() })
	s.addrMu.Unlock()
	if !ok {
		return tcpip.FullAddress{}, 0, opErr(ErrNoAddress)
	}
	pa := protocolAddress(a)
	return tcpip.FullAddress{NIC: nicID, Addr: pa.AddressWithPrefix.Address, Port: dst.Port()}, pa.Protocol, nil
}

func netAddr(network string, ap netip.AddrPort) net.Addr {
	if network == "udp" {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

// DialTCP opens a TCP connection from the Stack's address of dst's family
// to dst, through the tunnel. It returns once the handshake completed, or
// the error: a refusal (RST) unwraps to syscall.ECONNREFUSED, ctx ending
// to ctx.Err(). The conn supports CloseWrite; Close of the Stack aborts
// it.
func (s *Stack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	fa, proto, err := s.dialTarget("tcp", dst)
	if err != nil {
		return nil, err
	}
	var wq waiter.Queue
	ep, terr := s.ipstack.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: netAddr("tcp", dst), Err: convertErr(terr)}
	}
	// Connect completes asynchronously: the endpoint becomes writable
	// when the handshake completed or failed.
	entry, notify := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr = ep.Connect(fa)
	if _, started := terr.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: netAddr("tcp", dst), Err: ctx.Err()}
		case <-notify:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: netAddr("tcp", dst), Err: convertErr(terr)}
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// DialUDP opens a UDP socket connected to dst from the Stack's address of
// dst's family: each Write sends one datagram through the tunnel, each
// Read returns one from dst (datagrams from anywhere else are not
// delivered). An ICMP port unreachable from dst fails the next Read.
func (s *Stack) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	fa, proto, err := s.dialTarget("udp", dst)
	if err != nil {
		return nil, err
	}
	var wq waiter.Queue
	ep, terr := s.ipstack.NewEndpoint(udp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, &net.OpError{Op: "dial", Net: "udp", Addr: netAddr("udp", dst), Err: convertErr(terr)}
	}
	if terr := ep.Connect(fa); terr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "dial", Net: "udp", Addr: netAddr("udp", dst), Err: convertErr(terr)}
	}
	return gonet.NewUDPConn(&wq, ep), nil
}
