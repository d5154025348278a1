//go:build linux

package platform

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/warrennet/warren/platform/tunio"
)

// The kernel's side of tunio: runs the device writes must be taken whole
// and with their transport checksums left alone, and the kernel's own
// TSO runs must split into segments its TCP accepts.

const (
	tunLocal  = "10.77.0.1" // the TUN device's address
	tunPeer   = "10.77.0.2" // a host beyond it: the test plays it
	offset    = 16          // header room before each packet, as wireguard-go leaves
	wrongCsum = 0xbeef      // in every packet the test writes
)

func TestTUNOffloadWithTheKernel(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		dev, link := newTUN(t, tunName)
		if _, ok := dev.(*tunio.Device); !ok {
			t.Fatalf("CreateTUN gave a %T, want a *tunio.Device (has this kernel no IFF_VNET_HDR?)", dev)
		}
		addr := &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(tunLocal + "/24"))}
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Fatalf("adding %s: %v", tunLocal, err)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			t.Fatalf("bringing %s up: %v", tunName, err)
		}
		kernel := readSent(t, dev)

		t.Run("udp run in", func(t *testing.T) {
			uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tunLocal+":9000")))
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			var want [][]byte
			for i := range 6 {
				want = append(want, bytes.Repeat([]byte{byte('a' + i)}, map[bool]int{true: 300, false: 1000}[i == 5]))
			}
			var pkts [][]byte
			for i, p := range want {
				pkts = append(pkts, ipv4Packet(17, uint16(i), udpHeader(5000, 9000, len(p)), p))
			}
			if _, err := dev.Write(pkts, offset); err != nil {
				t.Fatalf("Write: %v", err)
			}
			uc.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2000)
			for i, w := range want {
				n, err := uc.Read(buf)
				if err != nil {
					t.Fatalf("datagram %d of %d: %v", i, len(want), err)
				}
				if !bytes.Equal(buf[:n], w) {
					t.Fatalf("datagram %d: %d bytes of %q, want %d of %q", i, n, buf[0], len(w), w[0])
				}
			}
		})

		t.Run("udp run out", func(t *testing.T) {
			// A UDP_SEGMENT send: with USO the device gets it as one run.
			uc, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tunLocal+":9003")), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tunPeer+":9002")))
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			const size, count = 1000, 5
			msg := make([]byte, size*count)
			for i := range msg {
				msg[i] = byte(i / size)
			}
			oob := make([]byte, unix.CmsgSpace(2))
			h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			h.SetLen(unix.CmsgLen(2))
			binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], size)
			if _, _, err := uc.WriteMsgUDP(msg, oob, nil); err != nil {
				t.Fatalf("sending %d datagrams with UDP_SEGMENT: %v", count, err)
			}
			for i := range count {
				s := kernel.next(t, func(s sent) bool { return s.proto == 17 && s.dport == 9002 })
				if !s.ipv4Ok || !bytes.Equal(s.payload, msg[i*size:(i+1)*size]) {
					t.Fatalf("datagram %d: %d bytes of %d, IPv4 header checksum right %v; want %d of %d", i, len(s.payload), s.payload[0], s.ipv4Ok, size, i)
				}
				if i == 0 {
					t.Logf("the first datagram came in a Read of %d", s.batch)
				}
			}
		})

		t.Run("tcp both ways", func(t *testing.T) {
			ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tunLocal+":9001")))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const myISN = 1000
			write := func(seq, ack uint32, flags byte, payload []byte) {
				t.Helper()
				p := ipv4Packet(6, uint16(seq), tcpHeader(seq, ack, flags), payload)
				if _, err := dev.Write([][]byte{p}, offset); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			write(myISN, 0, 0x02, nil) // SYN
			synAck := kernel.next(t, func(s sent) bool { return s.proto == 6 && s.sport == 9001 && s.flags == 0x12 })
			peerSeq := synAck.seq + 1
			write(myISN+1, peerSeq, 0x10, nil) // ACK
			ln.SetDeadline(time.Now().Add(5 * time.Second))
			c, err := ln.AcceptTCP()
			if err != nil {
				t.Fatalf("accepting the test's connection: %v", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))

			// In: 40 segments in one Write, merged on the way.
			const mss = 1000
			out := make([]byte, 40*mss)
			for i := range out {
				out[i] = byte(i * 7)
			}
			var pkts [][]byte
			for i := 0; i < len(out); i += mss {
				flags := byte(0x10)
				if i+mss == len(out) {
					flags |= 0x08 // PSH
				}
				pkts = append(pkts, ipv4Packet(6, uint16(i), tcpHeader(myISN+1+uint32(i), peerSeq, flags), out[i:i+mss]))
			}
			if _, err := dev.Write(pkts, offset); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := make([]byte, len(out))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading what the test out: %v", err)
			}
			if !bytes.Equal(got, out) {
				t.Fatal("the kernel received other bytes than the test out")
			}
			mySeq := myISN + 1 + uint32(len(out))

			// Out: the kernel's TSO runs, split by Read, acknowledged as they come.
			back := make([]byte, 300_000)
			for i := range back {
				back[i] = byte(i * 13)
			}
			go c.Write(back) // ends when the test ends: the connection closes
			recv, most := make([]byte, 0, len(back)), 0
			for len(recv) < len(back) {
				s := kernel.next(t, func(s sent) bool { return s.proto == 6 && s.sport == 9001 })
				most = max(most, s.batch)
				if !s.ipv4Ok {
					t.Fatalf("a segment of a run of %d has a wrong IPv4 header checksum", s.batch)
				}
				if at := s.seq - peerSeq; int(at) == len(recv) {
					recv = append(recv, s.payload...)
				}
				write(mySeq, peerSeq+uint32(len(recv)), 0x10, nil)
			}
			if !bytes.Equal(recv, back) {
				t.Fatal("the test received other bytes than the kernel sent")
			}
			if most < 2 {
				t.Errorf("every Read gave one segment: the kernel's TSO runs were not split (or not made)")
			}
		})
	})
}

// sent is a TCP segment or UDP datagram the kernel sent toward the test's
// peer, and how many packets the Read that gave it gave.
type sent struct {
	proto        byte
	sport, dport uint16
	seq          uint32 // TCP
	flags        byte   // TCP
	payload      []byte
	batch        int
	ipv4Ok       bool
}

type sentQueue struct{ c chan sent }

// next returns the next packet for which ok is true, dropping the others,
// or fails the test after 5 s without one.
func (q sentQueue) next(t *testing.T, ok func(sent) bool) sent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-q.c:
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatal("no such packet from the kernel in 5 s")
		}
	}
}

// readSent reads dev until the test ends and passes on the IPv4 TCP and
// UDP packets the kernel sends.
func readSent(t *testing.T, dev interface {
	Read([][]byte, []int, int) (int, error)
	Close() error
}) sentQueue {
	q := sentQueue{c: make(chan sent, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		bufs, sizes := make([][]byte, 128), make([]int, 128)
		for i := range bufs {
			bufs[i] = make([]byte, offset+65535)
		}
		for {
			n, err := dev.Read(bufs, sizes, offset)
			if err != nil {
				return
			}
			for i, b := range bufs[:n] {
				p := b[offset : offset+sizes[i]]
				if len(p) < 28 || p[0] != 0x45 || (p[9] != 6 && p[9] != 17) {
					continue
				}
				s := sent{
					proto:   p[9],
					sport:   binary.BigEndian.Uint16(p[20:]),
					dport:   binary.BigEndian.Uint16(p[22:]),
					payload: bytes.Clone(p[28:]),
					batch:   n,
					ipv4Ok:  foldSum(p[:20]) == 0xffff,
				}
				if s.proto == 6 {
					if len(p) < 40 {
						continue
					}
					s.seq, s.flags = binary.BigEndian.Uint32(p[24:]), p[33]
					s.payload = bytes.Clone(p[20+int(p[32]>>4)*4:])
				}
				select {
				case q.c <- s:
				default: // the test stopped reading
				}
			}
		}
	}()
	t.Cleanup(func() { dev.Close(); <-done })
	return q
}

// ipv4Packet is an IPv4 packet from the peer to the device's address with
// a right header checksum; its transport checksum (at 16 for TCP, 6 for
// UDP) is set wrong, for the kernel not to check.
func ipv4Packet(proto byte, id uint16, transport, payload []byte) []byte {
	b := make([]byte, offset, offset+20+len(transport)+len(payload))
	p := append(make([]byte, 20), transport...)
	p = append(p, payload...)
	p[0], p[8], p[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	binary.BigEndian.PutUint16(p[6:], 0x4000)
	copy(p[12:], netip.MustParseAddr(tunPeer).AsSlice())
	copy(p[16:], netip.MustParseAddr(tunLocal).AsSlice())
	binary.BigEndian.PutUint16(p[10:], ^foldSum(p[:20]))
	at := 20 + 16
	if proto == 17 {
		at = 20 + 6
	}
	binary.BigEndian.PutUint16(p[at:], wrongCsum)
	return append(b, p...)
}

func udpHeader(sport, dport uint16, n int) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+n))
	return h
}

func tcpHeader(seq, ack uint32, flags byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], 9001)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12], h[13] = 5<<4, flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	return h
}

// foldSum is the folded one's-complement sum of b.
func foldSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
