package connector

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	proxyproto "github.com/pires/go-proxyproto"
)

// PROXY protocol v2 (Route.ProxyProtocol): a LAN service behind a route
// that asks for it sees, before the client's first byte, a PROXY v2 header
// naming the client's overlay address and port as the source and the
// address the client asked for as the destination, and two TLVs of the
// application-specific range (0xE0-0xEF):
//
//	0xE0  the client's user (an e-mail address), if it has one
//	0xE1  the client's node name
//
// (HAProxy: "tcp-request connection set-var(sess.user) fc_pp_tlv(0xE0)";
// go-proxyproto: Header.TLVs.)
const (
	ProxyTLVUser proxyproto.PP2Type = 0xE0
	ProxyTLVNode proxyproto.PP2Type = 0xE1
)

// proxyHeader builds the PROXY v2 header of a TCP flow from src (the
// client's overlay address) to dst, for the client named node of user.
func proxyHeader(src, dst netip.AddrPort, user, node string) (*proxyproto.Header, error) {
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(src), net.TCPAddrFromAddrPort(dst))
	var tlvs []proxyproto.TLV
	if user != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: ProxyTLVUser, Value: []byte(user)})
	}
	if node != "" {
		tlvs = append(tlvs, proxyproto.TLV{Type: ProxyTLVNode, Value: []byte(node)})
	}
	if err := h.SetTLVs(tlvs); err != nil {
		return nil, fmt.Errorf("building the proxy protocol header: %w", err)
	}
	return h, nil
}

// writeProxyHeader writes the PROXY v2 header of a flow to w, the LAN
// socket, before any of the client's bytes.
func writeProxyHeader(w io.Writer, src, dst netip.AddrPort, user, node string) error {
	h, err := proxyHeader(src, dst, user, node)
	if err != nil {
		return err
	}
	if _, err := h.WriteTo(w); err != nil {
		return fmt.Errorf("writing the proxy protocol header: %w", err)
	}
	return nil
}
