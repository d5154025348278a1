package relay

import (
	"errors"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload. With UDP_SEGMENT (GSO) one send carries up to
// maxSegments datagrams of one size, laid end to end in one buffer; the
// kernel splits them as late as it can, often only at the receiving
// socket. With UDP_GRO the receiving socket gets such runs whole, with
// the segment size in a control message. The relay path moves thousands
// of equal-sized WireGuard datagrams per second between the same two
// addresses, so both cut its per-datagram system-call and stack cost
// roughly by the run length. Stock wireguard-go does the same.
const (
	// maxSegments is the most datagrams one GSO send may carry (the
	// kernel's UDP_MAX_SEGMENTS on older kernels) and the most a GRO
	// receive delivers (UDP_GRO_CNT_MAX).
	maxSegments = 64
	// maxRunLen bounds a run's bytes: the largest IPv4 UDP payload.
	maxRunLen = 1<<16 - 1 - 20 - 8
	// segSizeLen is the size of the UDP_SEGMENT and UDP_GRO value.
	segSizeLen = 2
)

// offloadSpace is the control-message room one message needs for a
// segment size.
var offloadSpace = unix.CmsgSpace(segSizeLen)

// enableOffload turns on UDP_GRO for c and reports whether c can send
// with UDP_SEGMENT (tx) and receives runs (rx).
func enableOffload(c *net.UDPConn) (tx, rx bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, false
	}
	rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		tx = err == nil
		// Setting UDP_GRO on a kernel that cannot fails; reading it back
		// catches kernels that accepted the option and ignore it.
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
			v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO)
			rx = err == nil && v == 1
		}
	})
	return tx, rx
}

// appendSegmentSize appends a UDP_SEGMENT control message for size to
// oob; oob needs offloadSpace bytes of spare capacity.
func appendSegmentSize(oob []byte, size int) []byte {
	n := len(oob)
	oob = oob[:n+offloadSpace]
	clear(oob[n:])
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[n]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(segSizeLen))
	v := uint16(size)
	copy(oob[n+unix.CmsgLen(0):], unsafe.Slice((*byte)(unsafe.Pointer(&v)), segSizeLen))
	return oob
}

// segmentSize returns the UDP_GRO segment size in the control messages
// oob, or 0 if there is none (the datagram came alone).
func segmentSize(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= segSizeLen {
			var v uint16
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&v)), segSizeLen), data)
			return int(v)
		}
		oob = rest
	}
	return 0
}

// offloadRefused reports whether a send failed because the outgoing
// device cannot checksum UDP_SEGMENT runs (EIO): the socket must then
// send datagrams one by one.
func offloadRefused(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se) && se.Err == unix.EIO
}
