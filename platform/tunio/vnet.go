package tunio

import (
	"encoding/binary"
	"errors"
)

// The virtio-net header (struct virtio_net_hdr) the TUN driver puts before
// each packet, in host byte order: the TUN device is not told otherwise
// (TUNSETVNETLE/BE).
const (
	vnetHdrLen = 10

	flagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM

	gsoNone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	gsoTCPv4 = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	gsoTCPv6 = 4 // VIRTIO_NET_HDR_GSO_TCPV6
	gsoUDPL4 = 5 // VIRTIO_NET_HDR_GSO_UDP_L4
)

// Header and field sizes and offsets.
const (
	ipv4Len       = 20
	ipv6Len       = 40
	tcpLen        = 20 // without options
	udpLen        = 8
	tcpCsumOffset = 16
	udpCsumOffset = 6
	protoTCP      = 6
	protoUDP      = 17
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpCWR = 0x80
)

// maxPacket bounds a merged packet: IPv4's total length (and, to keep one
// rule, an IPv6 packet's whole length).
const maxPacket = 1<<16 - 1

var errMalformed = errors.New("malformed packet from the tun device")

type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func (h *vnetHdr) decode(b []byte) {
	h.flags, h.gsoType = b[0], b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *vnetHdr) encode(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// sum adds b to the one's-complement sum s (RFC 1071), unfolded.
func sum(b []byte, s uint64) uint64 {
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold folds s to 16 bits.
func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// setIPv4Checksum recomputes the checksum of the IPv4 header h.
func setIPv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^fold(sum(h, 0)))
}
