package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Warren is Warren deployed in the lab: the coordinator (with its relay)
// in coord, the connector as user nobody in conn behind the site NAT
// serving 192.168.0.0/24, and the laptop daemon, not yet up.
type Warren struct {
	lab  *Lab
	bin  string
	dir  string
	opts Options
	Data string // the coordinator's --data
	// Socket is the daemon's control socket; LaptopState its --state.
	Socket, LaptopState string
	Coord, Conn, Daemon *Proc
	// Names is the name server answering Options.CoordName, if any.
	Names *Proc
}

// Options vary a deployment.
type Options struct {
	// DaemonUnder is a command line the laptop daemon runs under, its
	// own following: setpriv with a service unit's limits.
	DaemonUnder []string
	// RelayOnly runs the connector and the daemon with --relay-only:
	// every datagram goes through the relay, never a direct path.
	RelayOnly bool
	// CoordName gives the coordinator a DNS name, as a real deployment
	// has: a name server on the internet (ServeNames) answers it with
	// CoordIP, the coordinator's, the connector's and the laptop's
	// namespaces resolve with it (UseResolver), and --public-url is
	// https://CoordName:8443, so every token carries the name.
	CoordName string
	// PublicURL, when set, is the coordinator's --public-url.
	PublicURL string
	// Listen is the coordinator's --listen; CoordIP:8443 when empty.
	Listen string
	// CoordArgs are more coordinator flags (--tls-cert, --insecure-http,
	// --relay-listen).
	CoordArgs []string
	// BeforeCoordinator runs once the names work and before the
	// coordinator starts: a TLS proxy in front of it starts here.
	BeforeCoordinator func(ctx context.Context) error
	// Env is added to the environment of every warren process (the
	// coordinator, the connector, the daemon, the admin and user
	// commands): SSL_CERT_FILE=ca.pem makes them trust an admin's CA.
	Env []string
	// NoDaemon leaves the laptop without the TUN daemon: a test starts
	// the userspace one (StartUserspaceDaemon) instead.
	NoDaemon bool
}

// DeployWarren starts the coordinator, the connector and the laptop
// daemon from the warren binary bin, with their state under dir, and
// routes 192.168.0.0/24 to the connector.
func (l *Lab) DeployWarren(ctx context.Context, bin, dir string) (*Warren, error) {
	return l.DeployWarrenWith(ctx, bin, dir, Options{})
}

// DeployWarrenWith is DeployWarren with options.
func (l *Lab) DeployWarrenWith(ctx context.Context, bin, dir string, opts Options) (*Warren, error) {
	// The connector runs as nobody and must reach its state directory.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		os.Chmod(d, 0o755)
	}
	w := &Warren{lab: l, bin: bin, dir: dir, opts: opts, Data: filepath.Join(dir, "coord"), Socket: filepath.Join(dir, "warren.sock"), LaptopState: filepath.Join(dir, "laptop")}
	var err error
	if opts.CoordName != "" {
		if w.Names, err = l.ServeNames(ctx, dir, map[string]string{opts.CoordName: CoordIP}); err != nil {
			return nil, err
		}
		for _, role := range []string{Coord, Conn, Laptop} {
			if err := l.UseResolver(role, DNSIP); err != nil {
				return nil, err
			}
		}
	}
	if opts.BeforeCoordinator != nil {
		if err := opts.BeforeCoordinator(ctx); err != nil {
			return nil, err
		}
	}
	listen := opts.Listen
	if listen == "" {
		listen = CoordIP + ":8443"
	}
	coordArgs := []string{"coordinator", "--listen", listen, "--data", w.Data}
	switch {
	case opts.PublicURL != "":
		coordArgs = append(coordArgs, "--public-url", opts.PublicURL)
	case opts.CoordName != "":
		coordArgs = append(coordArgs, "--public-url", "https://"+opts.CoordName+":8443")
	}
	coordArgs = append(coordArgs, opts.CoordArgs...)
	name, argv := w.warren(coordArgs...)
	if w.Coord, err = l.Start(Coord, name, argv...); err != nil {
		return nil, err
	}
	if err := poll(ctx, func() error { _, err := w.Admin(ctx, "nodes", "ls"); return err }); err != nil {
		return nil, fmt.Errorf("coordinator not serving: %w\n%s", err, w.Coord.Output())
	}
	connTok, err := w.Admin(ctx, "token", "create", "--role", "connector", "--name", "office")
	if err != nil {
		return nil, err
	}
	// A site's sysctl would let unprivileged users ping; so does this one.
	if err := l.Run(ctx, Conn, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"); err != nil {
		return nil, err
	}
	connState := filepath.Join(dir, "connector")
	if err := os.MkdirAll(connState, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(connState, 65534, 65534); err != nil {
		return nil, err
	}
	// The token goes in a file only the connector's user reads, as the
	// README says, never on the command line where ps shows it.
	connTokFile, err := w.TokenFile("connector.token", connTok, 65534)
	if err != nil {
		return nil, err
	}
	connArgs := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"},
		w.warrenArgv(append([]string{"connector", "--token-file", connTokFile, "--state", connState}, w.relayOnly()...)...)...)
	if w.Conn, err = l.Start(Conn, "setpriv", connArgs...); err != nil {
		return nil, err
	}
	if err := poll(ctx, func() error {
		out, err := w.Admin(ctx, "nodes", "ls", "--json")
		if err != nil {
			return err
		}
		var nodes []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
		}
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Name == "office" && n.Online {
				return nil
			}
		}
		return fmt.Errorf("connector not online: %s", out)
	}); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, w.Conn.Output())
	}
	if _, err := w.Admin(ctx, "routes", "add", "192.168.0.0/24", "--connector", "office", "--comment", "site LAN"); err != nil {
		return nil, err
	}
	if opts.NoDaemon {
		return w, nil
	}
	if err := w.StartDaemon(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// StartDaemon starts the laptop daemon and waits for its socket.
func (w *Warren) StartDaemon(ctx context.Context) error {
	var err error
	name, argv := w.warren(append([]string{"daemon", "--state", w.LaptopState, "--socket", w.Socket}, w.relayOnly()...)...)
	if u := w.opts.DaemonUnder; len(u) > 0 {
		name, argv = u[0], append(append(slices.Clip(u[1:]), name), argv...)
	}
	if w.Daemon, err = w.lab.Start(Laptop, name, argv...); err != nil {
		return err
	}
	if err := poll(ctx, func() error { _, err := w.Laptop(ctx, "status"); return err }); err != nil {
		return fmt.Errorf("daemon not answering: %w\n%s", err, w.Daemon.Output())
	}
	return nil
}

// UserspaceDaemon is `warren daemon --userspace` on the laptop, run by an
// ordinary account of the laptop (AddAccounts) with no privilege and the
// userspace defaults: its state under the account's home
// (~/.local/state/warren) and its control socket in the account's
// runtime directory ($XDG_RUNTIME_DIR/warren/warren.sock), which every
// command Run starts finds by itself.
type UserspaceDaemon struct {
	w       *Warren
	Account Account
	// Env is the environment of the daemon and of every command Run
	// starts, besides CommandAs's: XDG_RUNTIME_DIR (a directory of the
	// account's, 0700, under its home), PATH with the warren binary's
	// directory first (so that `ProxyCommand warren nc %h %p` finds it)
	// and Options.Env.
	Env  []string
	Proc *Proc
}

// StartUserspaceDaemon starts `warren daemon --userspace` with args (the
// proxies' listen flags) in the laptop's namespace as the account, and
// waits until `warren status`, run as the account with no --socket,
// answers.
func (w *Warren) StartUserspaceDaemon(ctx context.Context, a Account, args ...string) (*UserspaceDaemon, error) {
	run := filepath.Join(a.Home, "run")
	if err := os.Mkdir(run, 0o700); err != nil && !os.IsExist(err) {
		return nil, err
	}
	if err := os.Chown(run, a.UID, a.GID); err != nil {
		return nil, err
	}
	u := &UserspaceDaemon{w: w, Account: a, Env: append([]string{"XDG_RUNTIME_DIR=" + run,
		"PATH=" + filepath.Dir(w.bin) + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}, w.opts.Env...)}
	var err error
	if u.Proc, err = w.lab.StartAs(Laptop, a, u.Env, w.bin, append([]string{"daemon", "--userspace"}, args...)...); err != nil {
		return nil, err
	}
	if err := poll(ctx, func() error { _, err := u.Run(ctx, "status"); return err }); err != nil {
		return nil, fmt.Errorf("userspace daemon not answering: %w\n%s", err, u.Proc.Output())
	}
	return u, nil
}

// Run runs warren with args in the laptop's namespace as the daemon's
// account, with the daemon's environment, and returns its trimmed output.
func (u *UserspaceDaemon) Run(ctx context.Context, args ...string) (string, error) {
	out, err := u.w.lab.OutputAs(ctx, Laptop, u.Account, u.Env, u.w.bin, args...)
	return strings.TrimSpace(out), err
}

// Up runs `warren up` as the account with the client token tok, handed
// over in a 0600 file of the account's (--token-file).
func (u *UserspaceDaemon) Up(ctx context.Context, tok string) (string, error) {
	f, err := u.w.TokenFile("client-"+u.Account.Name+".token", tok, u.Account.UID)
	if err != nil {
		return "", err
	}
	defer os.Remove(f)
	return u.Run(ctx, "up", "--token-file", f)
}

// TokenFile writes tok to a file named name in the deployment's
// directory, mode 0600 and owned by uid (and the same gid), and returns
// its path: how `up` and `connector` take a token (--token-file).
func (w *Warren) TokenFile(name, tok string, uid int) (string, error) {
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Chown(p, uid, uid); err != nil {
		return "", err
	}
	return p, nil
}

// Up runs `warren up` on the laptop with the client token tok, handed
// over in a 0600 file (--token-file), and returns what it printed.
func (w *Warren) Up(ctx context.Context, tok string) (string, error) {
	f, err := w.TokenFile("client.token", tok, 0)
	if err != nil {
		return "", err
	}
	defer os.Remove(f)
	return w.Laptop(ctx, "up", "--token-file", f)
}

// warrenArgv is the command line running warren with args and Options.Env.
func (w *Warren) warrenArgv(args ...string) []string {
	if len(w.opts.Env) == 0 {
		return append([]string{w.bin}, args...)
	}
	return append(append(append([]string{"env"}, w.opts.Env...), w.bin), args...)
}

// warren is warrenArgv split as Start and Output take it.
func (w *Warren) warren(args ...string) (string, []string) {
	argv := w.warrenArgv(args...)
	return argv[0], argv[1:]
}

// relayOnly returns the flag the options ask the nodes for, if any.
func (w *Warren) relayOnly() []string {
	if w.opts.RelayOnly {
		return []string{"--relay-only"}
	}
	return nil
}

// Admin runs an admin command on the coordinator host.
func (w *Warren) Admin(ctx context.Context, args ...string) (string, error) {
	name, argv := w.warren(append([]string{"--data", w.Data}, args...)...)
	out, err := w.lab.Output(ctx, Coord, name, argv...)
	return strings.TrimSpace(out), err
}

// Laptop runs a user command against the laptop's daemon.
func (w *Warren) Laptop(ctx context.Context, args ...string) (string, error) {
	name, argv := w.warren(append([]string{"--socket", w.Socket}, args...)...)
	out, err := w.lab.Output(ctx, Laptop, name, argv...)
	return strings.TrimSpace(out), err
}

// LaptopAs runs a user command against the laptop's daemon as the
// account (an ordinary user of the laptop, as AddAccounts made it), with
// Options.Env.
func (w *Warren) LaptopAs(ctx context.Context, a Account, args ...string) (string, error) {
	out, err := w.lab.OutputAs(ctx, Laptop, a, w.opts.Env, w.bin, append([]string{"--socket", w.Socket}, args...)...)
	return strings.TrimSpace(out), err
}

// poll retries f for up to 20 s.
func poll(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
