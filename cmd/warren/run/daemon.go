package run

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"sync"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/platform"
)

// Daemon runs the laptop daemon until ctx ends: the engine and its control
// socket.
func Daemon(ctx context.Context, o cli.DaemonOptions) error {
	limitMemory(o.Logger, daemonMemoryLimit)
	defer governProcs(ctx, o.Logger)()
	host, _ := os.Hostname()
	e, err := client.New(client.Config{
		StateDir:  o.State,
		Interface: o.Interface,
		Hostname:  host,
		Platform:  osPlatform{log: o.Logger, iface: o.Interface},
		Logger:    o.Logger,
		RelayOnly: o.RelayOnly,
		WatchNetwork: func(ctx context.Context, ignore string, changed func(string)) error {
			return platform.WatchNetwork(ctx, platform.WatchConfig{Ignore: ignore, Logger: o.Logger}, changed)
		},
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

// osPlatform is the real OS integration.
type osPlatform struct {
	log   *slog.Logger
	iface string
}

func (p osPlatform) CreateTUN(name string, mtu int) (tun.Device, error) {
	return platform.CreateTUN(name, mtu)
}

func (p osPlatform) NewRouter() (client.Router, error) { return platform.NewRouter(p.log) }

func (p osPlatform) Cleanup(iface string) error { return platform.Cleanup(iface) }

func (p osPlatform) DefaultGateways() ([]netip.Addr, error) { return platform.DefaultGateways() }

func (p osPlatform) LocalPrefixes() ([]netip.Prefix, error) { return platform.LocalPrefixes(p.iface) }
