package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// ConnectorOptions configures the connector role.
type ConnectorOptions struct {
	// Token enrolls the connector on its first start; later starts use
	// the identity in State.
	Token  string
	State  string
	Logger *slog.Logger
	// RelayOnly keeps the connector off direct paths.
	RelayOnly bool
}

// DaemonOptions configures the laptop daemon.
type DaemonOptions struct {
	State     string
	Socket    string
	Interface string
	Logger    *slog.Logger
	// RelayOnly keeps the daemon off direct paths.
	RelayOnly bool
	// Userspace runs the daemon without root: a userspace network stack
	// instead of a TUN device and routes. The socket's directory is then
	// the user's, mode 0700.
	Userspace bool
	// SOCKS5 and HTTPProxy are the local proxies' listen addresses
	// (userspace mode); "" leaves one off.
	SOCKS5, HTTPProxy string
	// ProxyUser and ProxyPassword, when set, are the proxies' credentials.
	ProxyUser, ProxyPassword string
}

// Default state directories.
const (
	DefaultConnectorState = "/var/lib/warren/connector"
	DefaultDaemonState    = "/var/lib/warren/client"
)

func (a *app) connectorCommand() *cli.Command {
	return &cli.Command{
		Name:      "connector",
		Usage:     "serve private prefixes to clients from a LAN gateway or VPC host (no root, outbound connections only)",
		ArgsUsage: " ",
		Flags: append(tokenFlags("connector"),
			&cli.StringFlag{Name: "state", Value: DefaultConnectorState, Usage: "state directory: identity and last netmap (0700)"},
			&cli.BoolFlag{Name: "relay-only", Usage: "never use a direct path to a client: everything goes through the relay"},
		),
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--token-file FILE] [--state DIR]"); err != nil {
				return err
			}
			tok, err := a.nodeToken(c)
			if err != nil {
				return err
			}
			if a.roles.Connector == nil {
				return errors.New("this build has no connector")
			}
			return a.roles.Connector(c.Context, ConnectorOptions{Token: tok, State: c.String("state"), Logger: a.logger(c), RelayOnly: c.Bool("relay-only")})
		},
	}
}

func (a *app) daemonCommand() *cli.Command {
	return &cli.Command{
		Name:      "daemon",
		Usage:     "run the laptop daemon: as root, the tunnel device, its routes and the control socket; with --userspace, no root: local proxies and warren nc",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "state directory: identity, last netmap, prefs (0700; default " + DefaultDaemonState + ", with --userspace $XDG_STATE_HOME/warren or ~/.local/state/warren)"},
			&cli.StringFlag{Name: "interface", Value: "warren0", Usage: "name of the TUN device"},
			&cli.BoolFlag{Name: "relay-only", Usage: "never use a direct path to a connector: everything goes through the relay"},
			&cli.BoolFlag{Name: "userspace", Usage: "no root, no TUN, no routes: a userspace network stack reached through the proxies below and warren nc (socket in $XDG_RUNTIME_DIR/warren)"},
			&cli.StringFlag{Name: "socks5", Usage: "with --userspace: serve SOCKS5 (CONNECT, UDP ASSOCIATE) on ADDR, e.g. 127.0.0.1:1080"},
			&cli.StringFlag{Name: "http-proxy", Usage: "with --userspace: serve an HTTP proxy (CONNECT and plain requests) on ADDR, e.g. 127.0.0.1:1081"},
			&cli.StringFlag{Name: "proxy-user", Usage: "the user name the proxies ask for (with --proxy-password-file)"},
			&cli.StringFlag{Name: "proxy-password-file", Usage: "file holding the proxies' password (with --proxy-user)"},
		},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--userspace [--socks5 ADDR] [--http-proxy ADDR]] [--state DIR] [--socket PATH]"); err != nil {
				return err
			}
			o, err := a.daemonOptions(c)
			if err != nil {
				return err
			}
			if a.roles.Daemon == nil {
				return errors.New("this build has no daemon")
			}
			return a.roles.Daemon(c.Context, o)
		},
	}
}

// daemonOptions reads and checks the daemon's flags.
func (a *app) daemonOptions(c *cli.Context) (DaemonOptions, error) {
	o := DaemonOptions{
		State: c.String("state"), Socket: c.String("socket"), Interface: c.String("interface"), Logger: a.logger(c),
		RelayOnly: c.Bool("relay-only"), Userspace: c.Bool("userspace"),
		SOCKS5: c.String("socks5"), HTTPProxy: c.String("http-proxy"), ProxyUser: c.String("proxy-user"),
	}
	if !o.Userspace {
		for _, f := range []string{"socks5", "http-proxy", "proxy-user", "proxy-password-file"} {
			if c.IsSet(f) {
				return o, fmt.Errorf("--%s needs --userspace (the TUN daemon serves no proxies)", f)
			}
		}
	} else if c.IsSet("interface") {
		return o, errors.New("--interface has no meaning with --userspace: there is no TUN device")
	}
	for _, p := range []struct{ flag, addr string }{{"socks5", o.SOCKS5}, {"http-proxy", o.HTTPProxy}} {
		if p.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(p.addr); err != nil || port == "" {
			return o, fmt.Errorf("--%s %q is not HOST:PORT (for example 127.0.0.1:1080)", p.flag, p.addr)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return o, fmt.Errorf("--%s %q: %q is not a port number (0 picks one)", p.flag, p.addr, port)
		}
	}
	if o.SOCKS5 != "" && o.SOCKS5 == o.HTTPProxy && !strings.HasSuffix(o.SOCKS5, ":0") {
		return o, fmt.Errorf("--socks5 and --http-proxy both listen on %s", o.SOCKS5)
	}
	switch pw := c.String("proxy-password-file"); {
	case (o.ProxyUser == "") != (pw == ""):
		return o, errors.New("give --proxy-user and --proxy-password-file together")
	case pw != "" && o.SOCKS5 == "" && o.HTTPProxy == "":
		return o, errors.New("--proxy-user needs a proxy: --socks5 ADDR or --http-proxy ADDR")
	case pw != "":
		var err error
		if o.ProxyPassword, err = a.readSecretFile(pw, "proxy password"); err != nil {
			return o, err
		}
	}
	if o.State == "" {
		o.State = DefaultDaemonState
		if o.Userspace {
			dir, err := userStateDir(a.env.Getenv)
			if err != nil {
				return o, err
			}
			o.State = dir
		}
	}
	if o.Socket == "" {
		o.Socket = ctl.DefaultSocket
		if o.Userspace {
			o.Socket = userSocket(a.env.Getenv, a.env.Getuid())
		}
	}
	return o, nil
}

// socket is the control socket the user commands talk to: --socket (or
// WARREN_SOCKET), else the system daemon's if it exists, else the user's
// own userspace daemon's.
func (a *app) socket(c *cli.Context) string {
	if s := c.String("socket"); s != "" {
		return s
	}
	if a.env.Exists(ctl.DefaultSocket) {
		return ctl.DefaultSocket
	}
	return userSocket(a.env.Getenv, a.env.Getuid())
}

// userSocket is the userspace daemon's default socket:
// $XDG_RUNTIME_DIR/warren/warren.sock, else (Windows)
// %LOCALAPPDATA%\warren\warren.sock, else /tmp/warren-UID/warren.sock.
func userSocket(getenv func(string) string, uid int) string {
	if d := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "warren", "warren.sock")
	}
	if d := getenv("LOCALAPPDATA"); filepath.IsAbs(d) {
		return filepath.Join(d, "warren", "warren.sock")
	}
	return filepath.Join("/tmp", "warren-"+strconv.Itoa(uid), "warren.sock")
}

// userStateDir is the userspace daemon's default state directory:
// $XDG_STATE_HOME/warren, else (Windows) %LOCALAPPDATA%\warren\state,
// else ~/.local/state/warren.
func userStateDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "warren"), nil
	}
	if d := getenv("LOCALAPPDATA"); filepath.IsAbs(d) {
		return filepath.Join(d, "warren", "state"), nil
	}
	home := getenv("HOME")
	if !filepath.IsAbs(home) {
		return "", errors.New("no home directory ($HOME) for the state: give --state DIR")
	}
	return filepath.Join(home, ".local", "state", "warren"), nil
}

func (a *app) upCommand() *cli.Command {
	return &cli.Command{
		Name:      "up",
		Usage:     "bring the tunnel up (enrolling first: by a login with --coordinator URL, or with --token-file or " + EnvToken + "); returns once traffic can flow",
		ArgsUsage: " ",
		Flags: append(append(tokenFlags("client"), loginFlags()...),
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "give up waiting after this long (a login waits up to 11m unless given)"},
		),
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--coordinator URL [--pin SHA256]] [--token-file FILE]"); err != nil {
				return err
			}
			tok, err := a.nodeToken(c)
			if err != nil {
				return err
			}
			req := ctl.UpRequest{Token: tok, Coordinator: c.String("coordinator"), Pin: c.String("pin")}
			if req.Token != "" && req.Coordinator != "" {
				return errors.New("give --coordinator (to log in) or a token, not both")
			}
			timeout := c.Duration("timeout")
			if req.Coordinator != "" && !c.IsSet("timeout") {
				timeout = loginTimeout
			}
			ctx, cancel := context.WithTimeout(c.Context, timeout)
			defer cancel()
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			if err := cl.Up(ctx, req, a.progress); err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, "up: traffic to the routed prefixes now goes through Warren (see: warren status)")
			return nil
		},
	}
}

func (a *app) downCommand() *cli.Command {
	return &cli.Command{
		Name:      "down",
		Usage:     "take the tunnel down and remove its routes (the node stays enrolled)",
		ArgsUsage: " ",
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, ""); err != nil {
				return err
			}
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			if err := cl.Down(c.Context); err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, "down")
			return nil
		},
	}
}

func (a *app) statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "what is connected, which routes are live, and why a route is not",
		ArgsUsage: " ",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--json]"); err != nil {
				return err
			}
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			st, err := cl.Status(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return a.printJSON(st)
			}
			return printStatus(a.env.Stdout, st, time.Now())
		},
	}
}

// printStatus renders a status for a person.
func printStatus(w0 io.Writer, st *ctl.Status, now time.Time) error {
	w := tabwriter.NewWriter(w0, 0, 4, 2, ' ', 0)
	switch {
	case !st.Enrolled:
		fmt.Fprintln(w, "not enrolled: run warren up --coordinator URL (to log in) or warren up --token-file FILE")
		printSSHCerts(w, st.SSH.Certs, now)
		return w.Flush()
	case st.State == ctl.StateDown:
		user := ""
		if st.Node.User != "" {
			user = ", user " + st.Node.User
		}
		mode := ""
		if st.Mode == ctl.ModeUserspace {
			mode = " in userspace mode"
		}
		fmt.Fprintf(w, "down%s (node %s, %s%s): run warren up\n", mode, st.Node.Name, st.Node.Address, user)
		printSSHCerts(w, st.SSH.Certs, now)
		return w.Flush()
	}
	coord := "connected"
	if !st.Coordinator.Connected {
		coord = "not connected"
		if st.Coordinator.Error != "" {
			coord += ": " + st.Coordinator.Error
		}
		coord += " (the tunnel keeps its last netmap)"
	}
	as := fmt.Sprintf("%s (%s)", st.Node.Name, st.Node.Address)
	if st.Node.User != "" {
		as = fmt.Sprintf("%s (%s), user %s", st.Node.Name, st.Node.Address, st.Node.User)
	}
	if st.Mode == ctl.ModeUserspace {
		fmt.Fprintf(w, "%s in userspace mode (no TUN, no routes) as %s\n", st.State, as)
		fmt.Fprintln(w, "reach it through: "+proxiesLine(st.Proxies))
	} else {
		fmt.Fprintf(w, "%s on %s as %s\n", st.State, st.Interface, as)
	}
	fmt.Fprintf(w, "coordinator %s: %s\n", st.Coordinator.URL, coord)
	if st.Relay.Endpoint != "" {
		relay := "not registered yet"
		if st.Relay.Connected {
			relay = "registered"
			if st.Relay.Observed != "" {
				relay += ", sees this node as " + st.Relay.Observed
			}
		}
		if st.Relay.Refusal != "" {
			relay += "; last refusal: " + st.Relay.Refusal
		}
		fmt.Fprintf(w, "relay %s: %s\n", st.Relay.Endpoint, relay)
	}
	switch st.Policy.Mode {
	case wire.PolicyEnforced:
		fmt.Fprintf(w, "access policy: enforced, %s allowed (warren why IP:PORT explains one)\n", plural(st.Policy.Grants, "destination", "destinations"))
	case wire.PolicyAllowAll:
		fmt.Fprintln(w, "access policy: none set (allow-all): every routed destination is reachable")
	}
	if len(st.SSH.As) > 0 {
		fmt.Fprintf(w, "ssh as: %s (warren ssh-cert gets a certificate)\n", strings.Join(st.SSH.As, ", "))
	}
	inbound := fmt.Sprintf("inbound: only answers to this machine's own flows (%s tracked", plural(st.Inbound.Flows, "flow", "flows"))
	if st.Inbound.Dropped > 0 {
		packets := "packets"
		if st.Inbound.Dropped == 1 {
			packets = "packet"
		}
		inbound += fmt.Sprintf(", %d %s dropped", st.Inbound.Dropped, packets)
	}
	fmt.Fprintln(w, inbound+")")
	fmt.Fprintf(w, "netmap v%d\n\n", st.NetMapVersion)
	if len(st.Peers) > 0 {
		row(w, "CONNECTOR", "ADDRESS", "ONLINE", "PATH", "HANDSHAKE", "RX", "TX")
		for _, p := range st.Peers {
			hs := "never"
			if !p.LastHandshake.IsZero() {
				hs = ago(now.Sub(p.LastHandshake))
			}
			row(w, p.Name, p.Address, yesNo(p.Online), p.Path, hs, bytesHuman(p.RxBytes), bytesHuman(p.TxBytes))
		}
		fmt.Fprintln(w)
	}
	if len(st.Routes) == 0 {
		fmt.Fprintln(w, "no routes: an admin adds them with warren routes add CIDR --connector NAME")
	} else {
		row(w, "ROUTE", "CONNECTOR", "LIVE", "WHY")
		for _, r := range st.Routes {
			row(w, r.Prefix, r.Connector, yesNo(r.Live), r.Reason)
		}
	}
	for _, warn := range st.Warnings {
		fmt.Fprintln(w, "warning: "+warn)
	}
	if len(st.Denials) > 0 {
		fmt.Fprintln(w, "\nRecent denials:")
		row(w, "  WHEN", "DESTINATION", "CONNECTOR", "WHY")
		for _, d := range st.Denials {
			dest := d.Dest.String() + "/" + string(d.Proto)
			if d.Proto == wire.ProtoICMP {
				dest = d.Dest.Addr().String() + "/icmp"
			}
			why := d.Reason
			if d.Count > 1 {
				why += fmt.Sprintf(" (%d times)", d.Count)
			}
			row(w, "  "+ago(now.Sub(d.At)), dest, d.Connector, why)
		}
	}
	printSSHCerts(w, st.SSH.Certs, now)
	return w.Flush()
}

// proxiesLine names the ways into a userspace daemon.
func proxiesLine(p ctl.Proxies) string {
	var ways []string
	if p.SOCKS5 != "" {
		ways = append(ways, "socks5 "+p.SOCKS5)
	}
	if p.HTTP != "" {
		ways = append(ways, "http proxy "+p.HTTP)
	}
	return strings.Join(append(ways, "warren nc HOST PORT"), ", ")
}

// printSSHCerts lists the SSH certificates the daemon keeps renewed.
func printSSHCerts(w io.Writer, certs []ctl.SSHCertStatus, now time.Time) {
	if len(certs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSSH certificates (renewed while the tunnel is up):")
	row(w, "  USER", "CERTIFICATE", "PRINCIPALS", "EXPIRES", "RENEWAL")
	for _, c := range certs {
		expires := "-"
		if !c.ValidBefore.IsZero() {
			expires = until(c.ValidBefore.Sub(now))
		}
		renewal := "-"
		switch {
		case c.Error != "":
			renewal = "failed: " + c.Error
		case !c.RenewAt.IsZero() && !c.RenewAt.After(now):
			renewal = "due (renewed while the tunnel is up)"
		case !c.RenewAt.IsZero():
			renewal = until(c.RenewAt.Sub(now))
		}
		row(w, "  "+c.User, c.Path, strings.Join(c.Principals, ","), expires, renewal)
	}
}

// until says when something happens: "in 40m", or "3m ago" once past.
func until(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired " + ago(-d)
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("in %dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("in %dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("in %dd", int(d.Hours()/24))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
