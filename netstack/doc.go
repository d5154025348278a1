// Package netstack owns Warren's userspace TCP/IP stacks: a gVisor stack
// presented to wireguard-go as a tun.Device (Stack), in one of two
// directions.
//
// Terminating (New, the connector): the Stack terminates every flow the
// tunnel carries, to any destination address, and hands each one to a
// FlowHandler.
//
// Originating (NewLocal, the laptop's userspace mode; dial.go): the Stack
// is an ordinary host that owns the node's overlay addresses
// (SetAddresses, changed when a netmap arrives) and opens flows through
// the tunnel with DialTCP and DialUDP (gVisor's gonet conns, CloseWrite
// included). It has no forwarder and is neither promiscuous nor spoofing:
// from the tunnel it accepts only the packets of the sockets it opened. A
// TCP segment to one of its addresses that matches no socket gets a RST,
// a UDP datagram an ICMP port unreachable, a packet to an address it does
// not own is dropped, and an echo request is dropped before gVisor sees
// it. The link, offloads and TCP tuning below are shared.
//
// What the terminating Stack owns:
//   - the gVisor stack, its one NIC (promiscuous and spoofing, so it
//     accepts packets to every address and answers from them), default
//     IPv4 and IPv6 routes, and the TCP tuning (SACK, buffer sizes,
//     congestion control, loss recovery);
//   - the link between gVisor and wireguard-go: batched Read with
//     back-pressure instead of drops and TCP segmentation offload (gVisor
//     sends up to 64 KiB at once; Read cuts it into MSS-sized segments),
//     Write with per-packet errors counted and logged at a limited rate,
//     which coalesces each batch's runs of TCP segments before gVisor sees
//     them (receive offload);
//   - the TCP forwarder: a bounded number of handshakes in progress (in
//     total and per source), the handler dials before the client's
//     handshake completes, RST when it refuses, MSS derived from the tunnel
//     MTU;
//   - UDP flows keyed by (source, destination), bounded, closed when idle;
//   - echo requests to foreign addresses, answered only when the handler
//     says the real host answered;
//   - the ICMP administratively prohibited a handler asks for when it
//     refuses a UDP flow (Prohibiter) or an echo request (PingProhibited),
//     quoting the offending packet's headers; a refused TCP flow gets a
//     RST;
//   - Proxy, the half-close-aware copy the handler uses for TCP flows,
//     which passes a reset on either side to the other as a reset, on
//     Linux reads a kernel socket straight into gVisor's send buffer, and
//     counts the bytes each way as they move (ProxyMeter).
//
// What it does not do: policy. Which sources may reach which destinations,
// and how the real host is dialled or pinged, is the FlowHandler's
// business (the connector). It knows nothing of WireGuard keys, peers, the
// relay or the coordinator.
//
// gVisor stays inside: no gVisor type crosses the package boundary, and
// gVisor's tcpip.Error values are converted here into Go errors that
// unwrap to the matching syscall.Errno (errors.Is(err,
// syscall.ECONNREFUSED)).
//
// netstack is a mechanism: it imports gVisor, wireguard-go's tun package,
// golang.org/x/sys/unix and the standard library, and must not import any
// other Warren package.
package netstack
