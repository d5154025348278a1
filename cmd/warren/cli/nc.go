package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
)

func (a *app) ncCommand() *cli.Command {
	return &cli.Command{
		Name:      "nc",
		Usage:     "connect stdin and stdout to a TCP connection the daemon opens to HOST:PORT (through the tunnel when it carries HOST), e.g. ssh -o ProxyCommand='warren nc %h %p'",
		ArgsUsage: "HOST PORT",
		Description: "HOST may be a name: the netmap's named hosts first, then the system's resolver (the daemon's).\n" +
			"The end of stdin half-closes the connection; the program ends when the far side has sent everything.",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up connecting after this long"},
		},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 2, "HOST PORT"); err != nil {
				return err
			}
			host, port, err := parseHostPort(c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return err
			}
			if c.Duration("timeout") <= 0 {
				return fmt.Errorf("--timeout %v is not a positive duration (for example 30s)", c.Duration("timeout"))
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			conn, err := cl.Dial(ctx, host, port)
			if err != nil {
				return err
			}
			defer conn.Close()
			return a.carry(conn, net.JoinHostPort(host, strconv.Itoa(int(port))))
		},
	}
}

// parseHostPort checks nc's arguments: a host name or IP address, and a
// port number.
func parseHostPort(host, port string) (string, uint16, error) {
	if !validHost(host) {
		return "", 0, fmt.Errorf("%q is not a host name or an IP address", host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("%q is not a port number (1-65535)", port)
	}
	return host, uint16(n), nil
}

// validHost accepts an IP address (IPv6 without brackets) or a DNS name:
// letters, digits, hyphens, underscores and dots, at most 253 characters.
func validHost(h string) bool {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Zone() == ""
	}
	if h == "" || len(h) > 253 || h[0] == '.' || h[0] == '-' {
		return false
	}
	for _, r := range h {
		ok := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

// carry copies stdin to conn and conn to stdout. The end of stdin
// half-closes conn; the end of conn ends the command, without waiting for
// stdin (which a program like ssh keeps open): its copy is left to the
// process's exit.
func (a *app) carry(conn net.Conn, dest string) error {
	go func() {
		if a.env.Stdin != nil {
			io.Copy(conn, a.env.Stdin)
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	if _, err := io.Copy(a.jsonOut, conn); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("connection to %s: %w", dest, err)
	}
	return nil
}
