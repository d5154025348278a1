package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
)

// CoordinatorOptions configures the coordinator role.
type CoordinatorOptions struct {
	// Listen is the TCP address of the HTTPS API.
	Listen string
	// Data is the directory holding the store, TLS material and admin.token.
	Data string
	// PublicURL is the base URL nodes use; empty derives it from Listen.
	PublicURL string
	// TLSCert and TLSKey name the admin's own certificate; both or neither.
	TLSCert, TLSKey string
	// InsecureHTTP serves plain HTTP, for running behind a TLS proxy.
	InsecureHTTP bool
	// RelayListen is the UDP address of the relay; empty means the API's
	// port on all addresses.
	RelayListen string
	Logger      *slog.Logger
	// Ready, if set, is called with the public URL once the API serves.
	Ready func(url string)
	// FlowRetention is how long the flow log keeps a record; zero means
	// the coordinator's default (30 days).
	FlowRetention time.Duration
	// SSHCertMaxValidity caps the SSH certificates the coordinator
	// issues; zero means its default (24h).
	SSHCertMaxValidity time.Duration
}

func (a *app) coordinatorCommand() *cli.Command {
	return &cli.Command{
		Name:      "coordinator",
		Usage:     "run the control plane: enrollment, routes, split policy, pushed netmaps, relay",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: ":8443", Usage: "address of the HTTPS API"},
			&cli.StringFlag{Name: "data", Usage: "state directory (created 0700)"},
			&cli.StringFlag{Name: "public-url", Usage: "URL nodes reach the coordinator at (default: https://LISTEN-ADDRESS)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (default: a self-signed one kept in --data, pinned in tokens)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM key for --tls-cert"},
			&cli.BoolFlag{Name: "insecure-http", Usage: "serve plain HTTP (only behind a TLS-terminating proxy)"},
			&cli.StringFlag{Name: "relay-listen", Usage: "UDP address of the relay (default: the API's port)"},
			&cli.StringFlag{Name: "flow-retention", Value: "720h", Usage: "how long the flow log keeps a record, e.g. 720h or 90d"},
			&cli.StringFlag{Name: "ssh-cert-max-validity", Value: "24h", Usage: "the longest an SSH certificate is valid (longer requests are shortened to it), e.g. 8h or 24h"},
		},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "--data DIR [--listen ADDR] [--public-url URL] [--tls-cert F --tls-key F]"); err != nil {
				return err
			}
			retention, err := parsePositiveDuration(c.String("flow-retention"))
			if err != nil {
				return fmt.Errorf("--flow-retention %q is not a positive duration (for example 720h or 90d)", c.String("flow-retention"))
			}
			sshMax, err := parsePositiveDuration(c.String("ssh-cert-max-validity"))
			if err != nil {
				return fmt.Errorf("--ssh-cert-max-validity %q is not a positive duration (for example 8h or 24h)", c.String("ssh-cert-max-validity"))
			}
			o := CoordinatorOptions{
				Listen:       c.String("listen"),
				Data:         c.String("data"),
				PublicURL:    c.String("public-url"),
				TLSCert:      c.String("tls-cert"),
				TLSKey:       c.String("tls-key"),
				InsecureHTTP: c.Bool("insecure-http"),
				RelayListen:  c.String("relay-listen"),
				Logger:       a.logger(c),

				FlowRetention:      retention,
				SSHCertMaxValidity: sshMax,
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if a.roles.Coordinator == nil {
				return errors.New("this build has no coordinator")
			}
			return a.roles.Coordinator(c.Context, o)
		},
	}
}

// Validate checks the options.
func (o CoordinatorOptions) Validate() error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.InsecureHTTP && o.TLSCert != "" {
		return errors.New("--insecure-http and --tls-cert exclude each other")
	}
	if o.Data == "" {
		return errors.New("--data DIR is required")
	}
	if o.FlowRetention < 0 {
		return errors.New("--flow-retention must be positive")
	}
	if o.SSHCertMaxValidity < 0 {
		return errors.New("--ssh-cert-max-validity must be positive")
	}
	if err := checkHostPort("--listen", o.Listen); err != nil {
		return err
	}
	if o.RelayListen != "" {
		if err := checkHostPort("--relay-listen", o.RelayListen); err != nil {
			return err
		}
	}
	return nil
}

func checkHostPort(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(flag + " " + strconv.Quote(addr) + " is not HOST:PORT (for example :8443 or 198.51.100.10:8443)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New(flag + " " + strconv.Quote(addr) + " has no valid port")
	}
	return nil
}
