package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

// maxSSHLogLimit is the most records the coordinator returns at once.
const maxSSHLogLimit = 10000

// maxSSHOverlap is the longest rotation overlap the coordinator takes.
const maxSSHOverlap = 30 * 24 * time.Hour

const sshCALogUsage = "[--user EMAIL] [--limit N] [--json]"

func (a *app) sshCACommand() *cli.Command {
	return &cli.Command{
		Name:      "ssh-ca",
		Usage:     "the SSH user certificate authority: print the keys servers trust (warren ssh-ca > /etc/ssh/warren_user_ca.pub, then TrustedUserCAKeys)",
		ArgsUsage: " ",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print every key with its state (signing, next, retiring) as JSON"}},
		Action:    a.sshCA,
		Subcommands: []*cli.Command{
			{
				Name:      "rotate",
				Usage:     "add a new CA key, trusted at once, that signs after --overlap; the current one retires once its last certificate expires",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "overlap", Value: "24h", Usage: "how long servers get to learn the new key before it signs (0s: at once), e.g. 24h or 7d"},
					jsonFlag,
				},
				Action: a.sshCARotate,
			},
			{
				Name:      "log",
				Usage:     "the SSH certificates issued, newest first: to whom, for which principals, until when",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "user", Usage: "only this user's certificates"},
					&cli.IntFlag{Name: "limit", Usage: fmt.Sprintf("at most this many, 1 to %d (default 100)", maxSSHLogLimit)},
					jsonFlag,
				},
				Action: a.sshCALog,
			},
		},
	}
}

func (a *app) sshCA(c *cli.Context) error {
	if err := argCount(c, 0, "[--json] | rotate [--overlap DURATION] | log "+sshCALogUsage); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		ca, err := admin.SSHCA(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(ca)
		}
		// Only the lines, so the output is the file sshd reads.
		for _, k := range ca.Keys {
			fmt.Fprintln(a.env.Stdout, k.PublicKey)
		}
		return nil
	})
}

func (a *app) sshCARotate(c *cli.Context) error {
	if err := argCount(c, 0, "[--overlap DURATION] [--json]"); err != nil {
		return err
	}
	overlap, err := parseOverlap(c.String("overlap"))
	if err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		ca, err := admin.RotateSSHCA(c.Context, overlap)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(ca)
		}
		if err := a.printSSHCAKeys(ca.Keys); err != nil {
			return err
		}
		if overlap > 0 {
			fmt.Fprintf(a.env.Stdout, "put every key in each server's TrustedUserCAKeys within %v, before the new key signs: warren ssh-ca > FILE\n", overlap)
		} else {
			fmt.Fprintln(a.env.Stdout, "the new key signs now: put every key in each server's TrustedUserCAKeys at once: warren ssh-ca > FILE")
		}
		return nil
	})
}

// parseOverlap reads --overlap: a duration from 0 to 30 days.
func parseOverlap(s string) (time.Duration, error) {
	bad := fmt.Errorf("--overlap %q is not a duration from 0s to 30d (for example 24h or 7d)", s)
	d, err := parsePositiveDuration(s)
	if err != nil {
		if z, zerr := time.ParseDuration(s); zerr == nil && z == 0 {
			return 0, nil
		}
		return 0, bad
	}
	if d > maxSSHOverlap {
		return 0, bad
	}
	return d, nil
}

// printSSHCAKeys shows the keys as a table.
func (a *app) printSSHCAKeys(keys []wire.SSHCAKey) error {
	w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	row(w, "STATE", "FINGERPRINT", "CREATED", "SIGNS FROM", "TRUSTED UNTIL")
	for _, k := range keys {
		row(w, k.State, k.Fingerprint, localMinute(&k.CreatedAt), localMinute(k.SigningFrom), localMinute(k.RetiresAt))
	}
	return w.Flush()
}

// localMinute shows a time to the minute in local time; "-" for none.
func localMinute(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func (a *app) sshCALog(c *cli.Context) error {
	if err := argCount(c, 0, sshCALogUsage); err != nil {
		return err
	}
	user := c.String("user")
	if user != "" {
		if err := wire.ValidateUser(user); err != nil {
			return fmt.Errorf("--user: %w", err)
		}
	}
	limit := 0
	if c.IsSet("limit") {
		limit = c.Int("limit")
		if limit < 1 || limit > maxSSHLogLimit {
			return fmt.Errorf("--limit %d is not from 1 to %d", limit, maxSSHLogLimit)
		}
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		recs, err := admin.SSHCertLog(c.Context, user, limit)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(recs)
		}
		if len(recs) == 0 {
			if user != "" {
				fmt.Fprintf(a.env.Stdout, "no SSH certificates issued to %s\n", user)
			} else {
				fmt.Fprintln(a.env.Stdout, "no SSH certificates issued")
			}
			return nil
		}
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "SERIAL", "ISSUED", "USER", "NODE", "PRINCIPALS", "VALID UNTIL", "KEY", "CA")
		for _, r := range recs {
			row(w, strconv.FormatUint(r.Serial, 10), r.IssuedAt.Local().Format("2006-01-02 15:04:05"), r.User, r.Node,
				strings.Join(r.Principals, ","), r.ValidBefore.Local().Format("2006-01-02 15:04:05"), r.KeyFingerprint, r.CAFingerprint)
		}
		return w.Flush()
	})
}
