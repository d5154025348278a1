package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/wire"
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
	// OIDC turns single sign-on on; nil leaves it off.
	OIDC *OIDCOptions
	// HostSuffix is the domain under which clients resolve the named
	// hosts (NAME.SUFFIX), canonical (lowercase, no trailing dot).
	HostSuffix string
}

// OIDCOptions configure single sign-on with an OpenID Connect provider.
type OIDCOptions struct {
	// Issuer is the provider's issuer URL (https), where discovery is.
	Issuer   string
	ClientID string
	// ClientSecretFile holds the client secret (read at start; it must
	// not be readable by other users).
	ClientSecretFile string
	// GroupsClaim names the ID token claim holding the person's groups.
	GroupsClaim string
	// AllowedDomains, if any, are the only e-mail domains let in.
	AllowedDomains []string
	// Revalidate is how often people with nodes are checked with the
	// provider.
	Revalidate time.Duration
}

// Defaults of the --oidc-* flags.
const (
	DefaultOIDCGroupsClaim = "groups"
	DefaultOIDCRevalidate  = 12 * time.Hour
	// MinOIDCRevalidate keeps the coordinator from asking the provider
	// about everyone too often.
	MinOIDCRevalidate = time.Minute
)

// oidcFlags are the single-sign-on flags of the coordinator.
var oidcFlags = []cli.Flag{
	&cli.StringFlag{Name: "oidc-issuer", Usage: "single sign-on: the OpenID Connect issuer URL (https); needs --oidc-client-id and --oidc-client-secret-file"},
	&cli.StringFlag{Name: "oidc-client-id", Usage: "single sign-on: the client ID registered at the provider (redirect URL: PUBLIC-URL/oidc/callback)"},
	&cli.StringFlag{Name: "oidc-client-secret-file", Usage: "single sign-on: a file holding the client secret (mode 0600)"},
	&cli.StringFlag{Name: "oidc-groups-claim", Value: DefaultOIDCGroupsClaim, Usage: "single sign-on: the ID token claim with the person's groups (group:NAME in the policy)"},
	&cli.StringFlag{Name: "oidc-allowed-domains", Usage: "single sign-on: comma-separated e-mail domains let in (default: any the provider vouches for)"},
	&cli.StringFlag{Name: "oidc-revalidate", Value: "12h", Usage: "single sign-on: how often people with nodes are checked with the provider (at least 1m)"},
}

// oidcOptions reads the --oidc-* flags: nil when single sign-on is off.
func oidcOptions(c *cli.Context) (*OIDCOptions, error) {
	core := []string{"oidc-issuer", "oidc-client-id", "oidc-client-secret-file"}
	var set, missing []string
	for _, f := range core {
		if c.String(f) != "" {
			set = append(set, "--"+f)
		} else {
			missing = append(missing, "--"+f)
		}
	}
	if len(set) == 0 {
		for _, f := range []string{"oidc-groups-claim", "oidc-allowed-domains", "oidc-revalidate"} {
			if c.IsSet(f) {
				return nil, fmt.Errorf("--%s needs --oidc-issuer, --oidc-client-id and --oidc-client-secret-file", f)
			}
		}
		return nil, nil
	}
	if len(missing) > 0 {
		verb := "needs"
		if len(set) > 1 {
			verb = "need"
		}
		return nil, fmt.Errorf("%s %s %s too", strings.Join(set, " and "), verb, strings.Join(missing, " and "))
	}
	o := &OIDCOptions{
		Issuer:           c.String("oidc-issuer"),
		ClientID:         c.String("oidc-client-id"),
		ClientSecretFile: c.String("oidc-client-secret-file"),
		GroupsClaim:      c.String("oidc-groups-claim"),
	}
	for _, d := range strings.Split(c.String("oidc-allowed-domains"), ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			o.AllowedDomains = append(o.AllowedDomains, d)
		}
	}
	var err error
	if o.Revalidate, err = parsePositiveDuration(c.String("oidc-revalidate")); err != nil {
		return nil, fmt.Errorf("--oidc-revalidate %q is not a positive duration (for example 12h or 1d)", c.String("oidc-revalidate"))
	}
	return o, nil
}

// Validate checks the options.
func (o *OIDCOptions) Validate() error {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--oidc-issuer %q is not an https:// URL", o.Issuer)
	}
	if strings.TrimSpace(o.ClientID) == "" || wire.ValidateText("--oidc-client-id", o.ClientID, 256) != nil {
		return fmt.Errorf("--oidc-client-id %q is not a client ID", o.ClientID)
	}
	if o.GroupsClaim == "" {
		return errors.New("--oidc-groups-claim is empty")
	}
	for _, d := range o.AllowedDomains {
		if strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
			return fmt.Errorf("--oidc-allowed-domains: %q is not a domain (for example example.com)", d)
		}
	}
	if o.Revalidate < MinOIDCRevalidate {
		return fmt.Errorf("--oidc-revalidate %v is shorter than %v", o.Revalidate, MinOIDCRevalidate)
	}
	return nil
}

func (a *app) coordinatorCommand() *cli.Command {
	return &cli.Command{
		Name:      "coordinator",
		Usage:     "run the control plane: enrollment, routes, split policy, pushed netmaps, relay",
		ArgsUsage: " ",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: ":8443", Usage: "address of the HTTPS API"},
			&cli.StringFlag{Name: "data", Usage: "state directory (created 0700)"},
			&cli.StringFlag{Name: "public-url", Usage: "URL nodes reach the coordinator at (default: https://LISTEN-ADDRESS)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate (default: a self-signed one kept in --data, pinned in tokens)"},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM key for --tls-cert"},
			&cli.BoolFlag{Name: "insecure-http", Usage: "serve plain HTTP (only behind a TLS-terminating proxy)"},
			&cli.StringFlag{Name: "relay-listen", Usage: "UDP address of the relay (default: the API's port)"},
			&cli.StringFlag{Name: "flow-retention", Value: "720h", Usage: "how long the flow log keeps a record, e.g. 720h or 90d"},
			&cli.StringFlag{Name: "ssh-cert-max-validity", Value: "24h", Usage: "the longest an SSH certificate is valid (longer requests are shortened to it), e.g. 8h or 24h"},
			&cli.StringFlag{Name: "host-suffix", Value: wire.DefaultHostSuffix, Usage: "the domain under which laptops resolve the named hosts (NAME and NAME.SUFFIX)"},
		}, oidcFlags...),
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "--data DIR [--listen ADDR] [--public-url URL] [--tls-cert F --tls-key F]"); err != nil {
				return err
			}
			retention, err := parsePositiveDuration(c.String("flow-retention"))
			if err != nil {
				return fmt.Errorf("--flow-retention %q is not a positive duration (for example 720h or 90d)", c.String("flow-retention"))
			}
			oidc, err := oidcOptions(c)
			if err != nil {
				return err
			}
			sshMax, err := parsePositiveDuration(c.String("ssh-cert-max-validity"))
			if err != nil {
				return fmt.Errorf("--ssh-cert-max-validity %q is not a positive duration (for example 8h or 24h)", c.String("ssh-cert-max-validity"))
			}
			suffix, err := wire.CanonicalDomain(c.String("host-suffix"))
			if err != nil {
				return fmt.Errorf("--host-suffix: %w", err)
			}
			o := CoordinatorOptions{
				HostSuffix:   suffix,
				Listen:       c.String("listen"),
				Data:         c.String("data"),
				PublicURL:    c.String("public-url"),
				TLSCert:      c.String("tls-cert"),
				TLSKey:       c.String("tls-key"),
				InsecureHTTP: c.Bool("insecure-http"),
				RelayListen:  c.String("relay-listen"),
				Logger:       a.logger(c),

				FlowRetention:      retention,
				OIDC:               oidc,
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
	if o.OIDC != nil {
		if err := o.OIDC.Validate(); err != nil {
			return err
		}
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
