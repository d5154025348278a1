package relay

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// TestRelayFiltersCallCandidates checks that the relay passes on a CALL
// with only the candidates it has seen the caller at.
func TestRelayFiltersCallCandidates(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name       string
		a, b       string // where the relay sees the caller and the callee
		candidates []string
		want       []string
	}{{
		name:       "the caller's public address only",
		a:          "198.51.100.1:4000",
		b:          "203.0.113.2:5000",
		candidates: []string{"198.51.100.1:4000", "198.51.100.1:4001", "192.168.1.10:4000", "10.0.0.5:22", "203.0.113.7:53", "[2001:db8::1]:4000"},
		want:       []string{"198.51.100.1:4000"},
	}, {
		name:       "an IPv4-mapped form of the public address",
		a:          "198.51.100.1:4000",
		b:          "203.0.113.2:5000",
		candidates: []string{"[::ffff:198.51.100.1]:4000"},
		want:       []string{"198.51.100.1:4000"},
	}, {
		name:       "behind one NAT: private addresses too",
		a:          "198.51.100.1:4000",
		b:          "198.51.100.1:4001",
		candidates: []string{"198.51.100.1:4000", "192.168.1.10:4000", "[fd00::10]:4000", "100.64.0.1:4000", "203.0.113.7:4000"},
		want:       []string{"198.51.100.1:4000", "192.168.1.10:4000", "[fd00::10]:4000"},
	}, {
		name:       "a relay on a private network",
		a:          "10.0.0.5:4000",
		b:          "10.0.1.7:5000",
		candidates: []string{"10.0.0.5:4000", "10.0.0.5:22", "10.0.1.9:4000"},
		want:       []string{"10.0.0.5:4000"},
	}, {
		// Only a spoofed source shows a private address to a relay
		// that sees the callee at a public one.
		name:       "a private source, a public callee",
		a:          "10.0.0.5:22",
		b:          "203.0.113.2:5000",
		candidates: []string{"10.0.0.5:22"},
		want:       nil,
	}, {
		name:       "nothing seen",
		a:          "198.51.100.1:4000",
		b:          "203.0.113.2:5000",
		candidates: []string{"10.0.0.5:22", "127.0.0.1:4000"},
		want:       nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirectServer(t)
			a := d.synthNode(wire.RoleClient, tt.a, 1)
			b := d.synthNode(wire.RoleConnector, tt.b, 2)
			d.feed(a.hello(), a.addr)
			d.feed(b.hello(), b.addr)
			d.drain()
			var cands []netip.AddrPort
			for _, c := range tt.candidates {
				cands = append(cands, ap(c))
			}
			call, err := Disco{Type: DiscoCall, Token: token{7}, Candidates: cands}.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			// A WireGuard datagram first, in the same read: the CALL
			// must not ride the checks that one passed.
			d.feed(a.data(b.key, "\x04 transport"), a.addr)
			d.feed(a.data(b.key, string(call)), a.addr)
			out := d.drain()
			if len(out) != 2 || out[1].addr.AddrPort() != b.addr {
				t.Fatalf("relay sent %d frames (%v), want two to b", len(out), out)
			}
			f, err := Parse(out[1].buf)
			if err != nil || f.Type != TypeData || f.Key != a.key {
				t.Fatalf("relay sent %v frame (key %v, err %v), want DATA from a", f.Type, f.Key, err)
			}
			m, err := ParseDisco(f.Payload)
			if err != nil || m.Type != DiscoCall || m.Token != (token{7}) {
				t.Fatalf("relay forwarded %+v (%v), want a's CALL", m, err)
			}
			var got []string
			for _, c := range m.Candidates {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("candidates passed on: %v, want %v", got, tt.want)
			}
			if n := d.s.Stats().CandidatesRemoved; n != uint64(len(tt.candidates)-len(tt.want)) {
				t.Errorf("CandidatesRemoved = %d, want %d", n, len(tt.candidates)-len(tt.want))
			}
		})
	}
}

// TestRelayDropsUncheckableDisco checks that the relay forwards no disco
// message but a CALL it can parse.
func TestRelayDropsUncheckableDisco(t *testing.T) {
	ping, _ := Disco{Type: DiscoPing, TxID: 1}.Append(nil)
	pong, _ := Disco{Type: DiscoPong, TxID: 1, Observed: netip.MustParseAddrPort("10.0.0.5:22")}.Append(nil)
	future := []byte{DiscoMagic, DiscoVersion + 1, byte(DiscoCall)}
	for _, msg := range [][]byte{ping, pong, future, {DiscoMagic}} {
		d := newDirectServer(t)
		a := d.synthNode(wire.RoleClient, "198.51.100.1:4000", 1)
		b := d.synthNode(wire.RoleConnector, "203.0.113.2:5000", 2)
		d.feed(a.hello(), a.addr)
		d.feed(b.hello(), b.addr)
		d.drain()
		d.feed(a.data(b.key, string(msg)), a.addr)
		if out := d.drain(); len(out) != 0 {
			t.Errorf("disco message % x: relay sent %d frames, want none", msg, len(out))
		}
	}
}

// TestCallCannotSteerPings checks, end to end through a real relay, that
// a peer's CALL naming a decoy address (a LAN host, say) makes the
// callee send the decoy nothing, while the caller's real address, where
// the relay sees it, is pinged.
func TestCallCannotSteerPings(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	victim := newDirectTestBind(t, h, BindConfig{})
	victim.waitConnected()
	caller := h.node(wire.RoleClient)
	caller.register()
	decoy := listenLoopback(t)
	self := caller.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	call, err := Disco{Type: DiscoCall, Token: token{1}, Candidates: []netip.AddrPort{decoy.LocalAddr().(*net.UDPAddr).AddrPort(), self}}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	caller.sendData(victim.key, string(call))

	// The caller's own address is pinged (its CALL is answered too).
	pinged := false
	for deadline := time.Now().Add(5 * time.Second); !pinged && time.Now().Before(deadline); {
		buf := make([]byte, MaxFrameLen)
		caller.conn.SetReadDeadline(deadline)
		n, from, err := caller.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		m, err := ParseDisco(buf[:n])
		pinged = err == nil && m.Type == DiscoPing && from.Port() == victim.port
	}
	if !pinged {
		t.Fatal("the caller's own address was not pinged")
	}
	// By now the decoy would have had its PING: they go out together.
	got := 0
	buf := make([]byte, 128)
	decoy.SetReadDeadline(time.Now().Add(discoTick + discoTick/2))
	for {
		if _, _, err := decoy.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		got++
	}
	if got != 0 {
		t.Errorf("the decoy got %d datagrams, want 0", got)
	}
	if n := h.srv.Stats().CandidatesRemoved; n != 1 {
		t.Errorf("CandidatesRemoved = %d, want 1", n)
	}
}

// FuzzForwardCall feeds the relay DATA with any payload from a registered
// node: whatever it forwards must be the payload untouched or, for a
// disco message, a well-formed CALL naming only addresses the relay has
// seen the caller at.
func FuzzForwardCall(f *testing.F) {
	seed, _ := Disco{Type: DiscoCall, Token: token{1}, Candidates: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:4000"), netip.MustParseAddrPort("10.0.0.5:22")}}.Append(nil)
	f.Add(seed, false)
	f.Add(seed, true)
	f.Add([]byte{4, 0, 0, 0, 1}, false)
	f.Add([]byte{DiscoMagic, DiscoVersion, byte(DiscoPing)}, false)
	f.Fuzz(func(t *testing.T, payload []byte, sameNAT bool) {
		if len(payload) == 0 || len(payload) > MaxPayload {
			return
		}
		d := newDirectServer(t)
		a := d.synthNode(wire.RoleClient, "198.51.100.1:4000", 1)
		bAddr := "203.0.113.2:5000"
		if sameNAT {
			bAddr = "198.51.100.1:5000"
		}
		b := d.synthNode(wire.RoleConnector, bAddr, 2)
		d.feed(a.hello(), a.addr)
		d.feed(b.hello(), b.addr)
		d.drain()
		d.feed(a.data(b.key, string(payload)), a.addr)
		src, dst := d.rs.byKey[a.key], d.rs.byKey[b.key]
		for _, p := range d.drain() {
			fr, err := Parse(p.buf)
			if err != nil || fr.Type != TypeData || fr.Key != a.key || p.addr.AddrPort() != b.addr {
				t.Fatalf("relay sent %v frame (key %v, err %v) to %v", fr.Type, fr.Key, err, p.addr)
			}
			if payload[0] != DiscoMagic {
				if !slices.Equal(fr.Payload, payload) {
					t.Fatalf("datagram changed on the way: % x, want % x", fr.Payload, payload)
				}
				continue
			}
			m, err := ParseDisco(fr.Payload)
			if err != nil || m.Type != DiscoCall {
				t.Fatalf("relay forwarded disco %v (%v), want only CALLs", m.Type, err)
			}
			for _, c := range m.Candidates {
				if !seenAt(src, dst, c) {
					t.Fatalf("relay passed on candidate %v, never seen", c)
				}
			}
		}
	})
}
