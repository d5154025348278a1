package relay

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/warrennet/warren/overlay/wire"
)

// wgNode is a wireguard-go device on an in-memory TUN whose only path to
// its peer is a relay.Bind, relay only (direct_test.go tests the direct
// path).
type wgNode struct {
	name string
	priv wire.Key
	pub  wire.Key
	ip   netip.Addr
	tun  *tuntest.ChannelTUN
	bind *Bind
	dev  *device.Device
}

func newWGNode(t *testing.T, h *relayHarness, name string, role wire.Role, ip string) *wgNode {
	t.Helper()
	n := &wgNode{name: name, ip: netip.MustParseAddr(ip), tun: tuntest.NewChannelTUN()}
	rand.Read(n.priv[:])
	n.priv[0] &= 248
	n.priv[31] = n.priv[31]&127 | 64
	n.pub = n.priv.PublicKey()
	n.bind = NewBind(BindConfig{Logger: testLogger(t), RelayOnly: true})
	n.bind.SetRelay(h.addr, Issue(h.key, Claims{NodeID: name, PublicKey: n.pub, Role: role, Expires: h.clock.Now().Add(time.Hour)}))
	level := device.LogLevelError
	if testing.Verbose() {
		level = device.LogLevelVerbose
	}
	n.dev = device.NewDevice(n.tun.TUN(), n.bind, device.NewLogger(level, name+": "))
	t.Cleanup(n.dev.Close)
	return n
}

// peerWith configures other as n's only peer, reached through the relay,
// the way wgdev writes it through UAPI.
func (n *wgNode) peerWith(t *testing.T, other *wgNode) {
	t.Helper()
	uapi := fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nendpoint=%s%s\nallowed_ip=%s/32\n",
		n.priv.Hex(), other.pub.Hex(), EndpointPrefix, other.pub.String(), other.ip)
	if err := n.dev.IpcSet(uapi); err != nil {
		t.Fatalf("%s: IpcSet: %v", n.name, err)
	}
	if err := n.dev.Up(); err != nil {
		t.Fatalf("%s: Up: %v", n.name, err)
	}
}

// ping writes an ICMP echo request from n to dst into n's TUN and waits
// for it to come out of dst's TUN, unchanged.
func (n *wgNode) ping(t *testing.T, dst *wgNode) {
	t.Helper()
	pkt := tuntest.Ping(dst.ip, n.ip)
	select {
	case n.tun.Outbound <- pkt:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: TUN not read", n.name)
	}
	select {
	case got := <-dst.tun.Inbound:
		if !bytes.Equal(got, pkt) {
			t.Fatalf("%s → %s: packet changed on the way:\n got %x\nwant %x", n.name, dst.name, got, pkt)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s → %s: ping did not arrive", n.name, dst.name)
	}
}

// TestWireGuardThroughRelay runs two real wireguard-go devices whose only
// path is the relay: an IPv4 packet written into one TUN comes out of the
// other, and back. The relay carried WireGuard traffic it cannot read.
func TestWireGuardThroughRelay(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	client := newWGNode(t, h, "client", wire.RoleClient, "100.96.0.1")
	connector := newWGNode(t, h, "connector", wire.RoleConnector, "100.96.0.2")
	client.peerWith(t, connector)
	connector.peerWith(t, client)
	waitFor(t, "both nodes registered at the relay", func() bool {
		return client.bind.Connected() && connector.bind.Connected()
	})

	client.ping(t, connector)
	connector.ping(t, client)
	client.ping(t, connector)

	// It went through the relay: a handshake initiation and response,
	// and three transport packets at least.
	waitFor(t, "the relay counting 5 datagrams forwarded", func() bool { return h.srv.Stats().Forwarded >= 5 })
	if st := h.srv.Stats(); st.Dropped != (Drops{}) {
		t.Errorf("relay dropped: %+v", st.Dropped)
	}
	// The endpoint reads back through UAPI as it was written.
	cfg, err := client.dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	if want := "endpoint=" + EndpointPrefix + connector.pub.String() + "\n"; !strings.Contains(cfg, want) {
		t.Errorf("client's UAPI config lacks %q:\n%s", want, cfg)
	}
	if !strings.Contains(cfg, "last_handshake_time_sec=") || strings.Contains(cfg, "last_handshake_time_sec=0\n") {
		t.Errorf("client has no handshake:\n%s", cfg)
	}

	// Revoking the connector cuts it off at the relay within a second,
	// though both devices still hold a session.
	h.policy.deny(client.pub, connector.pub, true)
	h.policy.deny(connector.pub, client.pub, true)
	h.clock.Advance(allowedTTL)
	client.tun.Outbound <- tuntest.Ping(connector.ip, client.ip)
	waitFor(t, "the relay refusing the revoked pair", func() bool { return h.srv.Stats().Dropped.NotAllowed > 0 })
	select {
	case <-connector.tun.Inbound:
		t.Error("a packet reached the connector after revocation")
	default:
	}
}

// TestWireGuardBindUpdate checks the Bind through wireguard-go's own
// close-and-reopen: changing the listen port rebinds, and traffic goes on.
func TestWireGuardBindUpdate(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	client := newWGNode(t, h, "client", wire.RoleClient, "100.96.0.1")
	connector := newWGNode(t, h, "connector", wire.RoleConnector, "100.96.0.2")
	client.peerWith(t, connector)
	connector.peerWith(t, client)
	waitFor(t, "both nodes registered", func() bool { return client.bind.Connected() && connector.bind.Connected() })
	client.ping(t, connector)

	// Setting the listen port makes wireguard-go close the Bind and open
	// it again (BindUpdate), keeping its sessions. The new socket
	// registers at once, the relay follows it, and traffic goes on.
	before := client.bind.Status().Observed
	if err := client.dev.IpcSet("listen_port=0\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reopened Bind registered", client.bind.Connected)
	if after := client.bind.Status().Observed; after == before {
		t.Errorf("the relay still sees the client at %v after the rebind", before)
	}
	connector.ping(t, client)
	client.ping(t, connector)
}
