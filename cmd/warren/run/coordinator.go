package run

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/coord/sshca"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/coord/tlscert"
	"github.com/warrennet/warren/overlay/relay"
	"github.com/warrennet/warren/overlay/wire"
)

// Files in the data directory.
const (
	DBFile       = "coordinator.db"
	RelayKeyFile = "relay.key" // signs the nodes' relay credentials
)

// Coordinator runs the coordinator until ctx ends.
func Coordinator(ctx context.Context, o cli.CoordinatorOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer governProcs(ctx, log)()
	// The data directory holds the relay key, the TLS key and the admin
	// token: only this user may enter it, and nobody else may own it.
	if err := atomicfile.PrivateDir(o.Data); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.Listen, err)
	}
	defer ln.Close()

	scheme := "https"
	if o.InsecureHTTP {
		scheme = "http"
	}
	publicURL, err := publicURL(o.PublicURL, scheme, ln.Addr().(*net.TCPAddr), log)
	if err != nil {
		return err
	}
	u, _ := url.Parse(publicURL)

	var tlsCfg *tls.Config
	pin := ""
	switch {
	case o.InsecureHTTP:
		log.Warn("serving plain HTTP: run this only behind a TLS-terminating proxy")
	case o.TLSCert != "":
		cert, err := tlscert.Load(o.TLSCert, o.TLSKey)
		if err != nil {
			return err
		}
		tlsCfg = serverTLS(cert)
	default:
		cert, p, err := tlscert.LoadOrCreate(o.Data, []string{u.Hostname(), "localhost", "127.0.0.1"})
		if err != nil {
			return err
		}
		tlsCfg, pin = serverTLS(cert), p
	}

	// The database holds only hashes of secrets, but nobody else needs it.
	dbPath := filepath.Join(o.Data, DBFile)
	if f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
		f.Close()
	}
	st, err := store.OpenSQLite(ctx, dbPath)
	if err != nil {
		return err
	}
	defer st.Close()

	// The relay listens on UDP, by default on the API's port number.
	relayListen := o.RelayListen
	if relayListen == "" {
		host, _, _ := net.SplitHostPort(o.Listen)
		relayListen = net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	pc, err := net.ListenPacket("udp", relayListen)
	if err != nil {
		return fmt.Errorf("relay: listening on %s: %w", relayListen, err)
	}
	defer pc.Close()
	_, relayPort, _ := net.SplitHostPort(pc.LocalAddr().String())
	relayKey, err := loadOrCreateKey(filepath.Join(o.Data, RelayKeyFile))
	if err != nil {
		return err
	}
	// The SSH user CA's keys, in their own private directory.
	ca, err := sshca.Open(filepath.Join(o.Data, sshca.Dir), nil)
	if err != nil {
		return err
	}
	cfg := coord.Config{
		Store:           st,
		Logger:          log,
		URL:             publicURL,
		Pin:             pin,
		RelayEndpoint:   net.JoinHostPort(u.Hostname(), relayPort),
		RelayCredential: relayCredential(relayKey),
		FlowRetention:   o.FlowRetention,

		SSHCA:              ca,
		SSHCertMaxValidity: o.SSHCertMaxValidity,
		HostSuffix:         o.HostSuffix,
	}
	if o.OIDC != nil {
		idp, err := identityProvider(ctx, o.OIDC, publicURL, log)
		if err != nil {
			return err
		}
		cfg.IdentityProvider, cfg.RevalidateInterval = idp, o.OIDC.Revalidate
	}
	co, err := coord.New(ctx, cfg)
	if err != nil {
		return err
	}
	if err := ensureAdminToken(ctx, co, o.Data, publicURL, pin, log); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		TLSConfig:   tlsCfg,
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	gated, err := api.New(co, log).Configure(srv, ln, api.DefaultLimits())
	if err != nil {
		return err
	}

	rs, err := relay.NewServer(relay.ServerConfig{Key: relayKey, Allowed: co.RelayAllowed, Logger: log.With("component", "relay")})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = co.Run(ctx, 30*time.Second) })
	wg.Go(func() {
		if err := rs.Serve(ctx, pc); err != nil && ctx.Err() == nil {
			log.Error("relay stopped", "err", err)
		}
	})
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if tlsCfg != nil {
			serveErr <- srv.ServeTLS(gated, "", "")
		} else {
			serveErr <- srv.Serve(gated)
		}
	})
	log.Info("coordinator serving", "url", publicURL, "listen", ln.Addr().String(), "relay", pc.LocalAddr().String(), "pin", pin)
	if o.Ready != nil {
		o.Ready(publicURL)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serving API: %w", err)
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	wg.Wait()
	log.Info("coordinator stopped")
	return runErr
}

func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// publicURL is the URL nodes use: the admin's, or one built from the
// listening address. A wildcard listener is given the host's first global
// unicast address, with a warning, since nodes cannot dial 0.0.0.0.
func publicURL(given, scheme string, addr *net.TCPAddr, log *slog.Logger) (string, error) {
	if given != "" {
		given = strings.TrimSuffix(given, "/")
		if err := wire.ValidateCoordinatorURL(given); err != nil {
			return "", fmt.Errorf("--public-url: %w", err)
		}
		return given, nil
	}
	host := addr.IP
	if host.IsUnspecified() {
		host = firstGlobalAddr()
		log.Warn("no --public-url: guessing the address nodes reach this coordinator at; tokens will carry it", "address", host.String())
	}
	return scheme + "://" + net.JoinHostPort(host.String(), strconv.Itoa(addr.Port)), nil
}

func firstGlobalAddr() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
				return n.IP
			}
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

// ensureAdminToken writes DATA/admin.token on first start. On later starts
// it keeps the secret and refreshes the URL and pin inside, should either
// have changed.
func ensureAdminToken(ctx context.Context, co *coord.Coordinator, dir, url, pin string, log *slog.Logger) error {
	path := filepath.Join(dir, cli.AdminTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok, perr := wire.ParseToken(string(b))
		if perr != nil {
			return fmt.Errorf("%s: %w (delete it to get a new admin token)", path, perr)
		}
		if tok.URL == url && tok.Pin == pin {
			return nil
		}
		tok.URL, tok.Pin = url, pin
		return atomicfile.WriteFile(path, []byte(tok.String()+"\n"), 0o600)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("reading admin token: %w", err)
	}
	resp, err := co.CreateAdminToken(ctx)
	if err != nil {
		return fmt.Errorf("creating admin token: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(resp.Token+"\n"), 0o600); err != nil {
		return err
	}
	log.Info("admin credential written; keep it secret", "file", path)
	return nil
}

// loadOrCreateKey reads the relay's signing key, creating it on first start.
func loadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) < 32 {
			return nil, fmt.Errorf("%s is not a relay key (delete it to make a new one; nodes get new credentials)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading relay key: %w", err)
	}
	key, err := relay.NewKey()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// relayCredentialLifetime is how long a relay credential stays valid. The
// relay also asks the coordinator about every pair it forwards between, so
// removing a node cuts it off at once whatever its credential says.
const relayCredentialLifetime = 10 * 365 * 24 * time.Hour

// relayCredential issues each node a credential bound to its ID, key and
// role. It is deterministic for a node, so netmaps do not change (and are
// not pushed again) just because a credential was issued anew.
func relayCredential(key []byte) func(wire.Node) string {
	return func(n wire.Node) string {
		return relay.Issue(key, relay.Claims{
			NodeID:    n.ID,
			PublicKey: n.PublicKey,
			Role:      n.Role,
			Expires:   relayEpoch.Add(relayCredentialLifetime),
		})
	}
}

// relayEpoch anchors credential expiry so that issuing is deterministic.
var relayEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
