package cli

import (
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"

	"github.com/warrennet/warren/overlay/wire"
)

func (a *app) tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and revoke enrollment tokens",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a token; prints only the token, so T=$(warren token create …) works",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "role", Usage: "client or connector"},
					&cli.StringFlag{Name: "name", Usage: "the node's name (NAME-1, NAME-2… with --reusable)"},
					&cli.BoolFlag{Name: "reusable", Usage: "allow any number of enrollments"},
					&cli.StringFlag{Name: "expires", Usage: "validity, e.g. 30m, 24h or 7d (default: never)"},
					&cli.StringFlag{Name: "user", Usage: "client tokens: the person (e-mail) whose devices it enrolls, as access-policy rules name them"},
				},
				Action: a.tokenCreate,
			},
			{Name: "ls", Usage: "list tokens", Flags: []cli.Flag{jsonFlag}, Action: a.tokenList},
			{Name: "revoke", Usage: "revoke a token by ID; nodes it enrolled stay", ArgsUsage: "ID", Action: a.tokenRevoke},
		},
	}
}

func (a *app) tokenCreate(c *cli.Context) error {
	if err := argCount(c, 0, "--role client|connector --name NAME [--user EMAIL] [--reusable] [--expires DURATION]"); err != nil {
		return err
	}
	if c.String("role") == "" || c.String("name") == "" {
		return errors.New("usage: warren token create --role client|connector --name NAME [--user EMAIL] [--reusable] [--expires DURATION]")
	}
	req := wire.CreateTokenRequest{Role: wire.Role(c.String("role")), Name: c.String("name"), Reusable: c.Bool("reusable"), User: c.String("user")}
	if s := c.String("expires"); s != "" {
		d, err := parseExpiry(s)
		if err != nil {
			return err
		}
		req.ExpiresIn = wire.Duration(d)
	}
	if err := req.Validate(); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.CreateToken(c.Context, req)
		if err != nil {
			return err
		}
		fmt.Fprintln(a.env.Stdout, resp.Token)
		fmt.Fprintf(a.env.Stderr, "token %s: %s %q%s, %s\n", resp.Info.ID, resp.Info.Role, resp.Info.Name, forUser(resp.Info.User), describeUse(resp.Info))
		return nil
	})
}

// forUser names the user a token or node belongs to, if any.
func forUser(user string) string {
	if user == "" {
		return ""
	}
	return " for " + user
}

func describeUse(t wire.TokenInfo) string {
	use := "single-use"
	if t.Reusable {
		use = "reusable"
	}
	if t.ExpiresAt == nil {
		return use + ", never expires"
	}
	return use + ", expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
}

// parseExpiry reads a Go duration, or a whole number of days as "7d".
func parseExpiry(s string) (time.Duration, error) {
	d, err := parsePositiveDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--expires %q is not a positive duration (for example 30m, 24h or 7d)", s)
	}
	return d, nil
}

func (a *app) tokenList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		tokens, err := admin.Tokens(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(tokens)
		}
		now := time.Now()
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "ID", "NAME", "ROLE", "USER", "STATE", "USES", "EXPIRES", "CREATED")
		for _, t := range tokens {
			expires := "never"
			if t.ExpiresAt != nil {
				expires = t.ExpiresAt.Local().Format("2006-01-02 15:04")
			}
			uses := strconv.Itoa(t.Uses)
			if !t.Reusable {
				uses += "/1"
			}
			row(w, t.ID, t.Name, t.Role, orDash(t.User), t.State(now), uses, expires, t.CreatedAt.Local().Format("2006-01-02 15:04"))
		}
		return w.Flush()
	})
}

func (a *app) tokenRevoke(c *cli.Context) error {
	if err := argCount(c, 1, "ID"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		id := c.Args().First()
		if err := admin.RevokeToken(c.Context, id); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "token %s revoked\n", id)
		return nil
	})
}

// orDash shows an empty field as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
