package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/proxy"
	"github.com/warrennet/warren/platform"
)

// Daemon runs the laptop daemon until ctx ends: the engine, its control
// socket and, in userspace mode, the local proxies.
func Daemon(ctx context.Context, o cli.DaemonOptions) error {
	limitMemory(o.Logger, daemonMemoryLimit)
	defer governProcs(ctx, o.Logger)()
	host, _ := os.Hostname()
	var plat client.Platform = osPlatform{log: o.Logger, iface: o.Interface}
	if o.Userspace {
		plat = client.NewUserspace(o.Logger)
		// The user's own runtime directory, or /tmp/warren-UID: only
		// this user may reach the socket in it.
		if err := atomicfile.PrivateDir(filepath.Dir(o.Socket)); err != nil {
			return fmt.Errorf("the control socket's directory: %w", err)
		}
	}
	var prox *proxy.Server // set before anything calls Proxies
	cfg := client.Config{
		StateDir:  o.State,
		Interface: o.Interface,
		Hostname:  host,
		Platform:  plat,
		Logger:    o.Logger,
		RelayOnly: o.RelayOnly,
		Userspace: o.Userspace,
	}
	if o.SOCKS5 != "" || o.HTTPProxy != "" {
		cfg.Proxies = func() ctl.Proxies { return proxyAddrs(prox, o) }
	}
	e, err := client.New(cfg)
	if err != nil {
		return err
	}
	if cfg.Proxies != nil {
		prox, err = proxy.New(proxy.Config{
			SOCKS5: o.SOCKS5, HTTP: o.HTTPProxy,
			Username: o.ProxyUser, Password: o.ProxyPassword,
			Dialer: e, Logger: o.Logger,
		})
		if err != nil {
			return err
		}
	}
	ln, err := ctl.Listen(o.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(o.Socket)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr, proxyErr error
	wg.Go(func() {
		serveErr = ctl.NewServer(e, o.Logger).Serve(ctx, ln)
		cancel()
	})
	if prox != nil {
		wg.Go(func() {
			proxyErr = prox.Run(ctx)
			cancel()
		})
	}
	o.Logger.Info("daemon listening", "socket", o.Socket, "userspace", o.Userspace)
	runErr := e.Run(ctx)
	cancel()
	wg.Wait()
	return errors.Join(runErr, serveErr, proxyErr)
}

// proxyAddrs are the proxies' addresses for status: where they listen,
// or, before they do, where they were told to.
func proxyAddrs(prox *proxy.Server, o cli.DaemonOptions) ctl.Proxies {
	p := ctl.Proxies{SOCKS5: o.SOCKS5, HTTP: o.HTTPProxy}
	if prox == nil {
		return p
	}
	socks5, http := prox.Addrs()
	if socks5 != nil {
		p.SOCKS5 = socks5.String()
	}
	if http != nil {
		p.HTTP = http.String()
	}
	return p
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
