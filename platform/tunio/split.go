package tunio

import (
	"encoding/binary"
	"fmt"

	"golang.zx2c4.com/wireguard/tun"
)

// split turns frame, one read from the TUN device (a virtio-net header and
// a packet), into packets at bufs[i][offset:], their lengths in sizes, and
// returns how many. A large packet the kernel left for segmentation (TSO,
// USO) becomes segments of its gso_size, each with its own IP length and
// ID and TCP sequence number and flags, or UDP length; as for a single TCP
// or UDP packet the kernel left for checksum offload, their transport
// checksums are not computed (see the package doc).
func split(frame []byte, bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(frame) < vnetHdrLen+1 {
		return 0, fmt.Errorf("%w: %d bytes", errMalformed, len(frame))
	}
	var h vnetHdr
	h.decode(frame)
	pkt := frame[vnetHdrLen:]
	if h.gsoType == gsoNone {
		if h.flags&flagNeedsCsum != 0 && !transportCsum(pkt, h) {
			if err := fillChecksum(pkt, h); err != nil {
				return 0, err
			}
		}
		if len(pkt) > len(bufs[0])-offset {
			return 0, fmt.Errorf("%w: %d bytes, more than the %d a buffer holds", errMalformed, len(pkt), len(bufs[0])-offset)
		}
		sizes[0] = copy(bufs[0][offset:], pkt)
		return 1, nil
	}

	v6 := pkt[0]>>4 == 6
	switch {
	case h.gsoType == gsoTCPv4 && pkt[0]>>4 == 4, h.gsoType == gsoTCPv6 && v6:
	case h.gsoType == gsoUDPL4 && (pkt[0]>>4 == 4 || v6):
	default:
		return 0, fmt.Errorf("%w: gso type %#x for IP version %d", errMalformed, h.gsoType, pkt[0]>>4)
	}
	tcp := h.gsoType != gsoUDPL4
	// The transport header starts at csum_start. hdr_len is not used: the
	// kernel may set it to the whole first packet (wireguard-go's note).
	start := int(h.csumStart)
	if (!v6 && start != int(pkt[0]&0xf)*4) || (v6 && start < ipv6Len) || start < ipv4Len {
		return 0, fmt.Errorf("%w: transport header at %d", errMalformed, start)
	}
	hdrLen := start + udpLen
	if tcp {
		if len(pkt) < start+tcpLen {
			return 0, fmt.Errorf("%w: %d bytes", errMalformed, len(pkt))
		}
		hdrLen = start + int(pkt[start+12]>>4)*4
		if hdrLen < start+tcpLen {
			return 0, fmt.Errorf("%w: tcp header of %d bytes", errMalformed, hdrLen-start)
		}
	}
	mss := int(h.gsoSize)
	if hdrLen > len(pkt) || mss == 0 {
		return 0, fmt.Errorf("%w: %d bytes, headers %d, gso size %d", errMalformed, len(pkt), hdrLen, mss)
	}
	data := pkt[hdrLen:]
	n := max(1, (len(data)+mss-1)/mss)
	if n > len(bufs) {
		// wireguard-go drops the run and reads on, for this error only.
		return 0, fmt.Errorf("%w: %d segments, more than the %d buffers", tun.ErrTooManySegments, n, len(bufs))
	}

	var id uint16
	if !v6 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	var seq uint32
	if tcp {
		seq = binary.BigEndian.Uint32(pkt[start+4:])
	}
	for i := range n {
		seg := data[min(i*mss, len(data)):min((i+1)*mss, len(data))]
		out := bufs[i][offset:]
		total := hdrLen + len(seg)
		if total > len(out) {
			return 0, fmt.Errorf("%w: a segment of %d bytes, more than the %d a buffer holds", errMalformed, total, len(out))
		}
		copy(out, pkt[:hdrLen])
		copy(out[hdrLen:], seg)
		out = out[:total]
		if v6 {
			binary.BigEndian.PutUint16(out[4:], uint16(total-ipv6Len))
		} else {
			binary.BigEndian.PutUint16(out[2:], uint16(total))
			binary.BigEndian.PutUint16(out[4:], id+uint16(i))
			setIPv4Checksum(out[:start])
		}
		if tcp {
			binary.BigEndian.PutUint32(out[start+4:], seq+uint32(i*mss))
			if i < n-1 {
				out[start+13] &^= tcpFIN | tcpPSH
			}
			if i > 0 {
				out[start+13] &^= tcpCWR
			}
		} else {
			binary.BigEndian.PutUint16(out[start+4:], uint16(total-start))
		}
		sizes[i] = total
	}
	return n, nil
}

// transportCsum reports whether h asks for pkt's TCP or UDP checksum,
// which is left as it is (see the package doc).
func transportCsum(pkt []byte, h vnetHdr) bool {
	start, off := int(h.csumStart), int(h.csumOffset)
	proto, ipLen := uint8(0), 0
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) >= ipv4Len {
			proto, ipLen = pkt[9], int(pkt[0]&0xf)*4
		}
	case 6:
		if len(pkt) >= ipv6Len {
			proto, ipLen = pkt[6], ipv6Len
		}
	}
	return start == ipLen && (proto == protoTCP && off == tcpCsumOffset || proto == protoUDP && off == udpCsumOffset)
}

// fillChecksum computes the checksum the kernel left to the device: over
// pkt from csum_start, whose field at csum_offset holds the pseudo-header
// sum already.
func fillChecksum(pkt []byte, h vnetHdr) error {
	start, at := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
	if at+2 > len(pkt) {
		return fmt.Errorf("%w: checksum at %d of %d bytes", errMalformed, at, len(pkt))
	}
	binary.BigEndian.PutUint16(pkt[at:], ^fold(sum(pkt[start:], 0)))
	return nil
}
