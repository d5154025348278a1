package dataplane

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/warrennet/warren/test/netlab"
)

// The naive connector is the third anchor (perf-anchors §7.1 (c)): what a
// connector built the obvious way from the same modules gets. It is
// wireguard-go's own tun/netstack (gVisor behind a channel endpoint, no
// batching, no offloads) in namespace b, listening on its tunnel address,
// with io.Copy to a real socket towards namespace c, where iperf3 and the
// echo server run. Namespace a's stock wireguard-go reaches it as a
// second peer. Warren's connector does the same job, so its figures are
// compared with these as well as with stock wireguard-go's.
const (
	pairC       = "c"         // the naive connector's LAN host
	vethB2      = "10.97.0.1" // b's end of the b–c veth
	vethC       = "10.97.0.2"
	naiveTun    = "10.99.1.2" // the naive connector's tunnel address
	naivePort   = "51821"
	naiveMarker = "naive-connector" // argv[1] of the probe, to find its PID
	naiveEnv    = "WARREN_DATAPLANE_NAIVE"
	iperfPort   = 5201 // iperf3's default, which the benchmark uses
)

// Child mode: the naive connector. Its configuration comes in naiveEnv
// as space-separated fields: private key (base64), listen port, peer
// public key (base64), peer endpoint, peer tunnel address, the forward
// host, and the ports to forward.
const modeNaive = "naive"

// naiveConfig is what the probe needs.
type naiveConfig struct {
	priv, peerPub string // base64, as wg genkey and wg pubkey print them
	port          int
	endpoint      string
	peerTun       netip.Addr
	local         netip.Addr
	forward       string // host that gets the connections
	ports         []int
	mtu           int
}

func (c naiveConfig) env() string {
	ps := make([]string, len(c.ports))
	for i, p := range c.ports {
		ps[i] = strconv.Itoa(p)
	}
	return strings.Join([]string{c.priv, strconv.Itoa(c.port), c.peerPub, c.endpoint, c.peerTun.String(),
		c.local.String(), c.forward, strconv.Itoa(c.mtu), strings.Join(ps, ",")}, " ")
}

func parseNaiveConfig(s string) (naiveConfig, error) {
	f := strings.Fields(s)
	if len(f) != 9 {
		return naiveConfig{}, fmt.Errorf("%s: want 9 fields, got %d", naiveEnv, len(f))
	}
	c := naiveConfig{priv: f[0], peerPub: f[2], endpoint: f[3], forward: f[6]}
	var err error
	if c.port, err = strconv.Atoi(f[1]); err != nil {
		return c, err
	}
	if c.peerTun, err = netip.ParseAddr(f[4]); err != nil {
		return c, err
	}
	if c.local, err = netip.ParseAddr(f[5]); err != nil {
		return c, err
	}
	if c.mtu, err = strconv.Atoi(f[7]); err != nil {
		return c, err
	}
	for _, p := range strings.Split(f[8], ",") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return c, err
		}
		c.ports = append(c.ports, n)
	}
	return c, nil
}

// b64ToHex turns a WireGuard key as wg prints it into UAPI's hex.
func b64ToHex(k string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("bad key %q", k)
	}
	return hex.EncodeToString(b), nil
}

// serveNaive runs the naive connector until it is killed. It prints
// "listening" once every port listens.
func serveNaive() error {
	c, err := parseNaiveConfig(os.Getenv(naiveEnv))
	if err != nil {
		return err
	}
	priv, err := b64ToHex(c.priv)
	if err != nil {
		return err
	}
	pub, err := b64ToHex(c.peerPub)
	if err != nil {
		return err
	}
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{c.local}, nil, c.mtu)
	if err != nil {
		return err
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, "naive: "))
	uapi := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=%s\nallowed_ip=%s/32\n",
		priv, c.port, pub, c.endpoint, c.peerTun)
	if err := dev.IpcSet(uapi); err != nil {
		return err
	}
	if err := dev.Up(); err != nil {
		return err
	}
	errs := make(chan error, len(c.ports))
	for _, port := range c.ports {
		ln, err := tnet.ListenTCP(&net.TCPAddr{Port: port})
		if err != nil {
			return err
		}
		target := net.JoinHostPort(c.forward, strconv.Itoa(port))
		go func() {
			for {
				in, err := ln.Accept()
				if err != nil {
					errs <- err
					return
				}
				go forward(in, target)
			}
		}()
	}
	fmt.Println("listening")
	return <-errs
}

// forward copies between in and a new connection to target, both ways,
// passing on each side's end of stream.
func forward(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, ioTimeout)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(out, in)
		if c, ok := out.(*net.TCPConn); ok {
			_ = c.CloseWrite()
		}
	}()
	_, _ = io.Copy(in, out)
	if c, ok := in.(interface{ CloseWrite() error }); ok {
		_ = c.CloseWrite()
	}
	<-done
}

// startNaive adds namespace c behind b, starts the naive connector in b
// (this binary, exe) and peers namespace a's wireguard-go with it; it
// returns the probe's PID. startWireGuard must have run.
func (p *pair) startNaive(ctx context.Context, exe string) (int, error) {
	ns := p.ns(pairC)
	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return 0, err
	}
	p.third = true
	for _, s := range [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", p.ns(pairB), "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", p.ns(pairB), "addr", "add", vethB2 + "/24", "dev", "eth1"},
		{"-n", ns, "addr", "add", vethC + "/24", "dev", "eth0"},
		{"-n", p.ns(pairB), "link", "set", "eth1", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
		// The tunnel's address for the naive connector, on a's TUN.
		{"-n", p.ns(pairA), "route", "add", naiveTun + "/32", "dev", p.ifname(pairA)},
	} {
		if _, err := run(ctx, "ip", s...); err != nil {
			return 0, err
		}
	}
	// As on the labs' site LAN: the b–c link, where the naive connector's
	// sockets and iperf3 in c send TCP, keeps each flow in order.
	if err := netlab.SteerFlows(ctx, p.ns(pairB), "eth1"); err != nil {
		return 0, err
	}
	if err := netlab.SteerFlows(ctx, p.ns(pairC), "eth0"); err != nil {
		return 0, err
	}
	priv, pub, err := genKey(ctx)
	if err != nil {
		return 0, err
	}
	aPub, err := nsOutput(ctx, p.ns(pairA), "wg", "show", p.ifname(pairA), "public-key")
	if err != nil {
		return 0, err
	}
	port, _ := strconv.Atoi(naivePort)
	cfg := naiveConfig{priv: priv, port: port, peerPub: strings.TrimSpace(aPub), endpoint: vethA + ":" + wgPort,
		peerTun: netip.MustParseAddr(tunA), local: netip.MustParseAddr(naiveTun), forward: vethC,
		ports: []int{iperfPort, mustAtoi(echoPort)}, mtu: tunnelMTU}
	probe, err := p.procs.start(p.ns(pairB), "env", modeEnv+"="+modeNaive, naiveEnv+"="+cfg.env(), exe, naiveMarker)
	if err != nil {
		return 0, err
	}
	if err := probe.waitOutput(ctx, "listening", 10*time.Second); err != nil {
		return 0, fmt.Errorf("naive connector: %w", err)
	}
	if _, err := nsOutput(ctx, p.ns(pairA), "wg", "set", p.ifname(pairA), "peer", pub,
		"allowed-ips", naiveTun+"/32", "endpoint", vethB+":"+naivePort); err != nil {
		return 0, err
	}
	if err := poll(ctx, 10*time.Second, func() error {
		_, err := nsOutput(ctx, p.ns(pairA), "ping", "-c", "1", "-W", "1", naiveTun)
		return err
	}); err != nil {
		return 0, errors.Join(fmt.Errorf("naive connector unreachable through the tunnel: %w", err), errors.New(tail(probe.out.String(), 500)))
	}
	return findPID(ctx, p.ns(pairB), func(argv []string) bool { return len(argv) > 1 && argv[1] == naiveMarker })
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
