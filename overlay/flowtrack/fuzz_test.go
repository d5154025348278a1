package flowtrack

import (
	"testing"
)

func fuzzSeeds(f *testing.F) {
	ssh := tcp(ap(laptop4, 40000), ap(lan4, 22), syn)
	dns := udp(ap(laptop4, 50000), ap(lan4, 53))
	dns6 := udp(ap(laptop6, 50000), ap(lan6, 53))
	ping := echo(laptop4, lan4, 7, false)
	first, second := fragment4(ipPacket(lan4, laptop4, protoUDP, udpDgram(53, 50000, make([]byte, 100))), 64)
	first6, second6 := fragment6(ipPacket(lan6, laptop6, protoUDP, udpDgram(53, 50000, make([]byte, 100))), 64, 5)
	for _, s := range [][2][]byte{
		{ssh, tcp(ap(lan4, 22), ap(laptop4, 40000), syn|ack)},
		{ssh, tcp(ap(conn4, 1), ap(laptop4, 22), syn)},
		{dns, udp(ap(lan4, 53), ap(laptop4, 50000))},
		{dns, icmpError(conn4, laptop4, 3, 13, dns)},
		{dns6, icmpError(lan6, laptop6, 1, 1, dns6)},
		{dns6, withExtHeader(udp(ap(lan6, 53), ap(laptop6, 50000)))},
		{ping, echo(lan4, laptop4, 7, true)},
		{ping, icmpError(router4, laptop4, 11, 0, ping)},
		{echo(laptop6, lan6, 9, false), echo(lan6, laptop6, 9, true)},
		{dns, first}, {dns, second}, {dns6, first6}, {dns6, second6},
	} {
		f.Add(s[0], s[1])
	}
}

// FuzzFilter checks the filter's promise on any pair of packets: with
// nothing recorded nothing passes, and once the laptop sent out, in
// passes only if it answers out's flow.
func FuzzFilter(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, out, in []byte) {
		h := newHarness(t, Config{})
		if h.recv(in)[0] {
			t.Fatalf("%s passed with no flow recorded", describe(in))
		}
		h.send(out)
		if !h.recv(in)[0] {
			return
		}
		o, p := parsed(out), parsed(in)
		rk := p.key
		rk.reverse()
		switch {
		case o.kind == kindFlow && p.kind == kindFlow && rk == o.key:
		case o.kind == kindEchoRequest && p.kind == kindEchoReply && rk == o.key:
		case (o.kind == kindFlow || o.kind == kindEchoRequest) && p.kind == kindICMPError && p.key == o.key && p.dst == o.key.src:
		default:
			t.Fatalf("%s passed after the laptop sent %s", describe(in), describe(out))
		}
	})
}

// FuzzParse checks that the parser never panics and that what it finds
// holds together.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, pkt := range [][]byte{a, b} {
			p := parsed(pkt)
			k := p.key
			switch p.kind {
			case kindFlow:
				if k.proto != protoTCP && k.proto != protoUDP {
					t.Fatalf("a flow of protocol %d", k.proto)
				}
			case kindEchoRequest, kindEchoReply:
				if k.sport != k.dport || (k.proto == protoICMP) == k.v6 || (k.proto != protoICMP && k.proto != protoICMPv6) {
					t.Fatalf("bad echo key %+v", k)
				}
			case kindICMPError:
				if p.fragmented {
					t.Fatal("a fragmented ICMP error")
				}
			case kindFragment:
				if !p.fragmented {
					t.Fatal("a fragment not marked fragmented")
				}
			}
			if p.kind != kindNone && p.kind != kindFragment && len(pkt) > 0 && (pkt[0]>>4 == 6) != k.v6 {
				t.Fatalf("IP version %d parsed as v6=%v", pkt[0]>>4, k.v6)
			}
			_ = describe(pkt)
		}
	})
}
