package netstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	wgnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

// TestThroughWireGuard runs the Stack under a real wireguard-go device,
// as the connector does, with a second device on wireguard-go's own
// netstack as the laptop and an in-memory bind between them: the Stack
// must satisfy wireguard-go's use of tun.Device (EventUp brings the
// device up, batched Read/Write at its offsets, Close from device.Close).
func TestThroughWireGuard(t *testing.T) {
	checkLeaks(t)
	echo := echoServer(t)
	dst := netip.MustParseAddrPort("192.0.2.10:80")
	h := &dialHandler{targets: map[netip.AddrPort]string{dst: echo.addr()}}
	s, err := New(Config{Handler: h, Addresses: []netip.Addr{nodeV4}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	laptopTun, laptop, err := wgnetstack.CreateNetTUN([]netip.Addr{clientV4}, nil, DefaultMTU)
	if err != nil {
		t.Fatal(err)
	}

	keys := [2][32]byte{}
	for i := range keys {
		rand.Read(keys[i][:])
	}
	pub := func(i int) string {
		p, err := curve25519.X25519(keys[i][:], curve25519.Basepoint)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(p)
	}
	binds := bindtest.NewChannelBinds()
	logger := device.NewLogger(device.LogLevelError, "")
	connector := device.NewDevice(s, binds[0], logger)
	client := device.NewDevice(laptopTun, binds[1], logger)
	defer client.Close()    // closes the laptop's netstack
	defer connector.Close() // closes s

	set := func(d *device.Device, cfg string) {
		t.Helper()
		if err := d.IpcSet(cfg); err != nil {
			t.Fatalf("IpcSet: %v", err)
		}
	}
	set(connector, fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nallowed_ip=%s/32\n", hex.EncodeToString(keys[0][:]), pub(1), clientV4))
	set(client, fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nallowed_ip=0.0.0.0/0\n", hex.EncodeToString(keys[1][:]), pub(0)))
	for _, d := range []*device.Device{connector, client} {
		if err := d.Up(); err != nil {
			t.Fatal(err)
		}
	}
	port := func(d *device.Device) string {
		cfg, err := d.IpcGet()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(cfg, "\n") {
			if p, ok := strings.CutPrefix(line, "listen_port="); ok {
				return p
			}
		}
		t.Fatal("no listen_port")
		return ""
	}
	set(client, fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%s\n", pub(0), port(connector)))
	set(connector, fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%s\n", pub(1), port(client)))

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := laptop.DialContextTCPAddrPort(ctx, dst)
	if err != nil {
		t.Fatalf("dial %v through wireguard: %v", dst, err)
	}
	defer c.Close()
	msg := strings.Repeat("through wireguard and back ", 1000)
	go c.Write([]byte(msg))
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Errorf("echo differs")
	}
}
