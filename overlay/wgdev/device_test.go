package wgdev

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/warrennet/warren/overlay/wire"
)

// spy records what Apply sends to the device, passing it on to next (if
// any).
type spy struct {
	next uapi

	mu   sync.Mutex // guards sets, get and fail
	sets []string
	get  string // IpcGet's answer when next is nil
	fail error  // IpcSet's answer when next is nil
}

func (s *spy) IpcSet(text string) error {
	s.mu.Lock()
	s.sets = append(s.sets, text)
	fail := s.fail
	s.mu.Unlock()
	if s.next != nil {
		return s.next.IpcSet(text)
	}
	return fail
}

func (s *spy) IpcGet() (string, error) {
	if s.next != nil {
		return s.next.IpcGet()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get, nil
}

// take returns the texts set since the last call.
func (s *spy) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sets
	s.sets = nil
	return out
}

// TestApplyDiffs checks what Apply sends: the golden texts, and nothing at
// all for an unchanged or invalid configuration.
func TestApplyDiffs(t *testing.T) {
	rec := &spy{}
	d := &Device{log: testLogger(t), uapi: rec}
	golden := func(name string) string {
		t.Helper()
		got, err := os.ReadFile(filepath.Join("testdata", name+".uapi"))
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	expect := func(what string, want ...string) {
		t.Helper()
		got := rec.take()
		if len(got) != len(want) {
			t.Fatalf("%s: %d IpcSet calls %q, want %d", what, len(got), got, len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: IpcSet(%q), want IpcSet(%q)", what, got[i], want[i])
			}
		}
	}

	base := goldenBase()
	if err := d.Apply(base); err != nil {
		t.Fatal(err)
	}
	expect("first apply", golden("first"))

	if err := d.Apply(base); err != nil {
		t.Fatal(err)
	}
	expect("unchanged apply")

	reordered := goldenBase()
	reordered.Peers[0], reordered.Peers[1] = reordered.Peers[1], reordered.Peers[0]
	if err := d.Apply(reordered); err != nil {
		t.Fatal(err)
	}
	expect("reordered apply")

	// The caller's slices are copied: changing them afterwards changes
	// nothing Apply remembers.
	base.Peers[0].AllowedIPs[0] = netip.MustParsePrefix("10.0.0.0/8")
	if err := d.Apply(goldenBase()); err != nil {
		t.Fatal(err)
	}
	expect("apply after the caller edited its slices")

	add := edit(func(cfg *Config) {
		cfg.Peers = append(cfg.Peers, Peer{PublicKey: testKey(0xd0), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.96.0.4/32"), netip.MustParsePrefix("10.20.0.0/16")}})
	})
	if err := d.Apply(add); err != nil {
		t.Fatal(err)
	}
	expect("add a peer", golden("add_peer"))

	invalid := goldenBase()
	invalid.Peers[0].AllowedIPs = invalid.Peers[1].AllowedIPs
	if err := d.Apply(invalid); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Apply(overlapping) = %v, want ErrInvalidConfig", err)
	}
	expect("invalid apply")

	if err := d.Apply(goldenBase()); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "public_key="+testKey(0xd0).Hex()+"\nremove=true\n" {
		t.Errorf("removing the added peer: IpcSet(%q)", got)
	}
}

// TestApplyReadsBackAfterFailure checks that after the device rejects a
// change part way, the next Apply diffs against what the device holds.
func TestApplyReadsBackAfterFailure(t *testing.T) {
	rec := &spy{}
	d := &Device{log: testLogger(t), uapi: rec}
	if err := d.Apply(goldenBase()); err != nil {
		t.Fatal(err)
	}
	rec.take()

	// The device took the new peer d0 but not its endpoint: it holds c0
	// and d0 but no longer b0 (say).
	boom := errors.New("IPC error 1: failed to set endpoint")
	d0 := testKey(0xd0)
	rec.mu.Lock()
	rec.fail = boom
	rec.get = formatGet(deviceState{
		privateKey: testKey(0x11),
		listenPort: 40000,
		peers: []PeerStats{
			{PublicKey: testKey(0xc0), Endpoint: "198.51.100.20:51820", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.96.0.3/32")}, PersistentKeepalive: 25 * time.Second},
			{PublicKey: d0},
		},
	})
	rec.mu.Unlock()
	withD := edit(func(cfg *Config) {
		cfg.Peers = append(cfg.Peers, Peer{PublicKey: d0, Endpoint: "bogus", AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.96.0.4/32")}})
	})
	if err := d.Apply(withD); !errors.Is(err, boom) {
		t.Fatalf("Apply() = %v, want it to wrap %v", err, boom)
	}
	rec.take()

	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if err := d.Apply(goldenBase()); err != nil {
		t.Fatal(err)
	}
	// b0 is added again in full, d0 removed; c0 is untouched and the
	// listen port the device chose is kept.
	b0 := goldenBase().Peers[1]
	want := fmt.Sprintf("public_key=%s\nendpoint=%s\npersistent_keepalive_interval=25\nallowed_ip=100.96.0.2/32\nallowed_ip=192.168.0.0/24\npublic_key=%s\nremove=true\n",
		b0.PublicKey.Hex(), b0.Endpoint, d0.Hex())
	if got := rec.take(); len(got) != 1 || got[0] != want {
		t.Errorf("apply after a failure: IpcSet(%q), want IpcSet(%q)", got, want)
	}
}

// pair is two devices connected by bindtest, each with a ChannelTUN.
type pair struct {
	tun  [2]*tuntest.ChannelTUN
	dev  [2]*Device
	ip   [2]netip.Addr
	priv [2]wire.Key
	port [2]uint16 // the port each device's Bind reports; the other's endpoint
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{}
	binds := bindtest.NewChannelBinds()
	for i := range 2 {
		p.tun[i] = tuntest.NewChannelTUN()
		p.ip[i] = netip.AddrFrom4([4]byte{100, 96, 0, byte(i + 1)})
		p.priv[i] = newKey(t)
		d, err := New(p.tun[i].TUN(), binds[i], testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		p.dev[i] = d
		st, err := d.state()
		if err != nil {
			t.Fatal(err)
		}
		p.port[i] = st.listenPort
	}
	return p
}

// peer returns device i's view of the other device: its overlay /32 and,
// as device_test.go in wireguard-go does for bindtest, an endpoint of
// 127.0.0.1 and the port the other device's Bind reported.
func (p *pair) peer(i int) Peer {
	o := 1 - i
	return Peer{
		PublicKey:  p.priv[o].PublicKey(),
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(p.ip[o], 32)},
		Endpoint:   fmt.Sprintf("127.0.0.1:%d", p.port[o]),
	}
}

// send injects an ICMP echo from device i's TUN to the other device.
func (p *pair) send(i int) []byte {
	msg := tuntest.Ping(p.ip[1-i], p.ip[i])
	p.tun[i].Outbound <- msg
	return msg
}

// ping sends from device i and waits until the packet comes out of the
// other device's TUN.
func (p *pair) ping(t *testing.T, i int) {
	t.Helper()
	msg := p.send(i)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case got := <-p.tun[1-i].Inbound:
		if !bytes.Equal(got, msg) {
			t.Fatalf("device %d received %x, want %x", 1-i, got, msg)
		}
	case <-timer.C:
		t.Fatalf("ping from device %d did not arrive", i)
	}
}

// noPing sends from device i and checks that nothing comes out of the
// other device's TUN within a while.
func (p *pair) noPing(t *testing.T, i int) {
	t.Helper()
	p.send(i)
	timer := time.NewTimer(300 * time.Millisecond)
	defer timer.Stop()
	select {
	case got := <-p.tun[1-i].Inbound:
		t.Fatalf("device %d received %x, want nothing", 1-i, got)
	case <-timer.C:
	}
}

// stats returns device i's stats of the other device; ok is false if it
// has no such peer.
func (p *pair) stats(t *testing.T, i int) (PeerStats, bool) {
	t.Helper()
	all, err := p.dev[i].Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if s.PublicKey == p.priv[1-i].PublicKey() {
			return s, true
		}
	}
	return PeerStats{}, false
}

// TestTwoDevices runs two real wireguard-go devices in one process and
// shows that re-applying a configuration that leaves a live peer unchanged
// keeps its session, while removing the peer stops its traffic.
func TestTwoDevices(t *testing.T) {
	checkNoLeaks(t)
	start := time.Now()
	p := newPair(t)
	cfg := [2]Config{}
	for i := range 2 {
		cfg[i] = Config{PrivateKey: p.priv[i], Peers: []Peer{p.peer(i)}}
		if err := p.dev[i].Apply(cfg[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.ping(t, 0)
	p.ping(t, 1)

	var hs [2]time.Time
	for i := range 2 {
		s, ok := p.stats(t, i)
		if !ok {
			t.Fatalf("device %d: Stats has no peer", i)
		}
		if s.LastHandshake.Before(start) || s.LastHandshake.After(time.Now()) {
			t.Errorf("device %d: last handshake %v, want between %v and now", i, s.LastHandshake, start)
		}
		if s.RxBytes == 0 || s.TxBytes == 0 {
			t.Errorf("device %d: rx %d, tx %d bytes, want both non-zero", i, s.RxBytes, s.TxBytes)
		}
		if s.Endpoint == "" {
			t.Errorf("device %d: no endpoint", i)
		}
		if len(s.AllowedIPs) != 1 || s.AllowedIPs[0] != netip.PrefixFrom(p.ip[1-i], 32) {
			t.Errorf("device %d: allowed IPs %v, want [%v/32]", i, s.AllowedIPs, p.ip[1-i])
		}
		hs[i] = s.LastHandshake
	}

	// Add a third, unrelated peer to device 0; the live peer is unchanged
	// (the config is even built afresh, in another order).
	rec := &spy{next: p.dev[0].uapi}
	p.dev[0].uapi = rec
	third := newKey(t).PublicKey()
	cfg[0] = Config{PrivateKey: p.priv[0], Peers: []Peer{
		{PublicKey: third, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}, PersistentKeepalive: 25 * time.Second},
		p.peer(0),
	}}
	if err := p.dev[0].Apply(cfg[0]); err != nil {
		t.Fatal(err)
	}
	sets := rec.take()
	if len(sets) != 1 || strings.Contains(sets[0], p.priv[1].PublicKey().Hex()) || !strings.Contains(sets[0], third.Hex()) {
		t.Errorf("re-apply sent %q, want one IpcSet that adds the third peer and does not mention the live one", sets)
	}
	if all, err := p.dev[0].Stats(); err != nil || len(all) != 2 {
		t.Errorf("Stats() after adding a peer = %d peers, %v; want 2", len(all), err)
	}

	before, _ := p.stats(t, 0)
	p.ping(t, 0)
	p.ping(t, 1)
	for i := range 2 {
		s, _ := p.stats(t, i)
		if !s.LastHandshake.Equal(hs[i]) {
			t.Errorf("device %d: last handshake %v after the re-apply, want unchanged %v (the session was dropped)", i, s.LastHandshake, hs[i])
		}
	}
	if after, _ := p.stats(t, 0); after.RxBytes <= before.RxBytes || after.TxBytes <= before.TxBytes {
		t.Errorf("device 0: rx %d→%d, tx %d→%d bytes across pings, want both to grow", before.RxBytes, after.RxBytes, before.TxBytes, after.TxBytes)
	}

	// Applying the same config again sends nothing.
	if err := p.dev[0].Apply(cfg[0]); err != nil {
		t.Fatal(err)
	}
	if sets := rec.take(); len(sets) != 0 {
		t.Errorf("unchanged apply sent %q, want nothing", sets)
	}

	// Remove the live peer from device 0: traffic stops both ways.
	cfg[0].Peers = cfg[0].Peers[:1]
	if err := p.dev[0].Apply(cfg[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.stats(t, 0); ok {
		t.Errorf("device 0 still reports the removed peer")
	}
	p.noPing(t, 0)
	p.noPing(t, 1)

	// Adding it back restores traffic with a new session: the check above
	// would have seen a dropped session.
	cfg[0].Peers = append(cfg[0].Peers, p.peer(0))
	if err := p.dev[0].Apply(cfg[0]); err != nil {
		t.Fatal(err)
	}
	p.ping(t, 0)
	p.ping(t, 1)
	if s, _ := p.stats(t, 0); !s.LastHandshake.After(hs[0]) {
		t.Errorf("device 0: last handshake %v after re-adding the peer, want a new one after %v", s.LastHandshake, hs[0])
	}

	for i := range 2 {
		if err := p.dev[i].Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	}
	checkNoLeaks(t)
}

func TestClose(t *testing.T) {
	checkNoLeaks(t)
	binds := bindtest.NewChannelBinds()
	d, err := New(tuntest.NewChannelTUN().TUN(), binds[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(Config{PrivateKey: newKey(t), Peers: []Peer{{PublicKey: newKey(t).PublicKey(), Endpoint: "127.0.0.1:1", PersistentKeepalive: time.Second}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := d.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	}
	if err := d.Apply(Config{PrivateKey: newKey(t)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply() after Close = %v, want ErrClosed", err)
	}
	if _, err := d.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats() after Close = %v, want ErrClosed", err)
	}
	binds[1].Close()
	checkNoLeaks(t)
}

// failingBind is a Bind that cannot open.
type failingBind struct {
	conn.Bind
	closed atomic.Bool
}

func (b *failingBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	return nil, 0, errors.New("address in use")
}

func (b *failingBind) Close() error { b.closed.Store(true); return nil }

// closeTUN records Close.
type closeTUN struct {
	tun.Device
	closed atomic.Bool
}

func (c *closeTUN) Close() error { c.closed.Store(true); return c.Device.Close() }

func TestNewFails(t *testing.T) {
	checkNoLeaks(t)
	binds := bindtest.NewChannelBinds()
	bind := &failingBind{Bind: binds[0]}
	td := &closeTUN{Device: tuntest.NewChannelTUN().TUN()}
	d, err := New(td, bind, testLogger(t))
	if err == nil {
		d.Close()
		t.Fatal("New() with a Bind that cannot open succeeded")
	}
	if !strings.Contains(err.Error(), "address in use") {
		t.Errorf("New() = %v, want the Bind's error", err)
	}
	if !td.closed.Load() || !bind.closed.Load() {
		t.Errorf("after New failed: TUN closed %v, Bind closed %v; want both closed", td.closed.Load(), bind.closed.Load())
	}
	checkNoLeaks(t)
}

// TestConcurrentUse runs Apply, Stats and Close at once, for the race
// detector; every call either works or reports ErrClosed.
func TestConcurrentUse(t *testing.T) {
	checkNoLeaks(t)
	binds := bindtest.NewChannelBinds()
	d, err := New(tuntest.NewChannelTUN().TUN(), binds[0], testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	priv := newKey(t)
	var cfgs []Config
	for i := range 4 {
		c := Config{PrivateKey: priv}
		for j := range i + 1 {
			c.Peers = append(c.Peers, Peer{
				PublicKey:  testKey(byte(0xa0 + j)),
				AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(j), 0}), 24)},
			})
		}
		cfgs = append(cfgs, c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if w == 0 {
					_, err := d.Stats()
					errs <- err
				} else {
					errs <- d.Apply(cfgs[(i+w)%len(cfgs)])
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- d.Close()
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("got %v, want nil or ErrClosed", err)
		}
	}
	binds[1].Close()
	checkNoLeaks(t)
}

// TestHandshake: Handshake starts a handshake with a peer whose session
// is older than asked, and leaves younger sessions and peers that never
// completed one alone.
func TestHandshake(t *testing.T) {
	checkNoLeaks(t)
	p := newPair(t)
	if n, err := p.dev[1].Handshake(0); n != 0 || err != nil {
		t.Errorf("Handshake with no peers: %d, %v; want 0, nil", n, err)
	}
	for i := range 2 {
		if err := p.dev[i].Apply(Config{PrivateKey: p.priv[i], Peers: []Peer{p.peer(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := p.dev[1].Handshake(0); n != 0 || err != nil {
		t.Errorf("Handshake before any session: %d, %v; want 0, nil", n, err)
	}
	p.ping(t, 0) // device 0 initiates
	before, _ := p.stats(t, 1)
	if n, err := p.dev[1].Handshake(time.Hour); n != 0 || err != nil {
		t.Errorf("Handshake(1h) on a fresh session: %d, %v; want 0, nil", n, err)
	}
	// wireguard-go sends no initiation within REKEY_TIMEOUT of its last
	// handshake message (device 1's response).
	<-time.After(device.RekeyTimeout)
	if n, err := p.dev[1].Handshake(0); n != 1 || err != nil {
		t.Fatalf("Handshake(0): %d, %v; want 1, nil", n, err)
	}
	waitFor(t, "a new handshake, device 1 initiating", func() bool {
		st, _ := p.stats(t, 1)
		return st.LastHandshake.After(before.LastHandshake)
	})
	p.ping(t, 1)
}
