package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/platform"
)

// Daemon runs the laptop daemon until ctx ends: the engine and its control
// socket. On a system without the TUN daemon's platform code it fails at
// once, pointing at userspace mode.
func Daemon(ctx context.Context, o cli.DaemonOptions) error {
	if err := tunSupported(platform.TUNSupported()); err != nil {
		return err
	}
	limitMemory(o.Logger, daemonMemoryLimit)
	defer governProcs(ctx, o.Logger)()
	host, _ := os.Hostname()
	e, err := client.New(client.Config{
		StateDir:  o.State,
		Interface: o.Interface,
		Hostname:  host,
		Platform:  &osPlatform{log: o.Logger, iface: o.Interface},
		Logger:    o.Logger,
		RelayOnly: o.RelayOnly,
	})
	if err != nil {
		return err
	}
	ln, err := ctl.Listen(o.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(o.Socket)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() {
		serveErr = ctl.NewServer(e, o.Logger).Serve(ctx, ln)
		cancel()
	})
	o.Logger.Info("daemon listening", "socket", o.Socket)
	runErr := e.Run(ctx)
	cancel()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	return serveErr
}

// tunSupported turns platform.TUNSupported's answer into the daemon's
// one-line refusal.
func tunSupported(err error) error {
	if errors.Is(err, platform.ErrNotSupported) {
		return fmt.Errorf("the TUN daemon is not supported on %s yet; run: warren daemon --userspace", runtime.GOOS)
	}
	return err
}

// osPlatform is the real OS integration.
type osPlatform struct {
	log *slog.Logger

	mu    sync.Mutex // guards iface
	iface string     // the TUN device's name: asked for, then as created
}

// CreateTUN creates the device and keeps the name the system gave it
// (macOS: utunN), which LocalPrefixes leaves out.
func (p *osPlatform) CreateTUN(name string, mtu int) (tun.Device, error) {
	dev, err := platform.CreateTUN(name, mtu)
	if err != nil {
		return nil, err
	}
	if got, err := dev.Name(); err == nil {
		p.mu.Lock()
		p.iface = got
		p.mu.Unlock()
	}
	return dev, nil
}

func (p *osPlatform) NewRouter() (client.Router, error) { return platform.NewRouter(p.log) }

func (p *osPlatform) Cleanup(iface string) error { return platform.Cleanup(iface) }

func (p *osPlatform) DefaultGateways() ([]netip.Addr, error) { return platform.DefaultGateways() }

func (p *osPlatform) LocalPrefixes() ([]netip.Prefix, error) {
	p.mu.Lock()
	iface := p.iface
	p.mu.Unlock()
	return platform.LocalPrefixes(iface)
}
