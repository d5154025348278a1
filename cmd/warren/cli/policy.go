package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

// maxPolicyFile bounds the document read from a file or stdin; the
// coordinator refuses more anyway.
const maxPolicyFile = 1 << 20

func (a *app) policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "the access policy: which users may reach which destinations (none set: every client reaches everything routed)",
		Subcommands: []*cli.Command{
			{
				Name:   "get",
				Usage:  "print the document as set (warren policy get > policy.json); nothing under allow-all",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the mode, the document and when it was set as JSON"}},
				Action: a.policyGet,
			},
			{
				Name:      "set",
				Usage:     "set the document from FILE (- for stdin): print who gains and loses what; refused with the line and the reason if anything is wrong",
				ArgsUsage: "FILE|-",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "dry-run", Usage: "check the document and print what would change, changing nothing"},
					&cli.BoolFlag{Name: "deny-all", Usage: "accept a document without rules: every flow is denied"},
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
				},
				Action: a.policySet,
			},
			{Name: "reset", Usage: "remove the document: back to allow-all", Flags: []cli.Flag{jsonFlag}, Action: a.policyReset},
			{
				Name:      "why",
				Usage:     "may USER reach DEST, and which rule decides; exit status 0 allow, 1 deny, 2 error",
				ArgsUsage: "USER IP:PORT[/PROTO]|HOST:PORT[/PROTO]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the decision as JSON"}},
				Action:    a.policyWhy,
			},
		},
	}
}

func (a *app) policyGet(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		doc, err := admin.Policy(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(doc)
		}
		// The mode goes to stderr, so `policy get > policy.json` keeps
		// only the document.
		fmt.Fprintln(a.env.Stderr, doc.Reason)
		if doc.Mode != wire.PolicyEnforced {
			return nil
		}
		text := doc.Document
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		_, err = io.WriteString(a.env.Stdout, text)
		return err
	})
}

func (a *app) policySet(c *cli.Context) error {
	if err := argCount(c, 1, "FILE|- [--dry-run] [--deny-all]"); err != nil {
		return err
	}
	name, text, err := a.readPolicy(c.Args().First())
	if err != nil {
		return err
	}
	req := wire.SetPolicyRequest{Document: text, DryRun: c.Bool("dry-run"), DenyAll: c.Bool("deny-all")}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.SetPolicy(c.Context, req)
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeInvalid {
			return fmt.Errorf("%s: %s; nothing changed", name, we.Message)
		}
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(resp)
		}
		if resp.Applied {
			fmt.Fprintf(a.env.Stdout, "access policy set: %s\n", resp.Mode)
		} else {
			fmt.Fprintf(a.env.Stdout, "dry run, nothing changed: the policy would be %s\n", resp.Mode)
		}
		a.printChanges(resp.Changes)
		a.warn(resp.Warnings)
		return nil
	})
}

// readPolicy reads the document from a file, or stdin for "-", and returns
// the name to show in errors with it.
func (a *app) readPolicy(arg string) (name, text string, err error) {
	var r io.Reader
	name = arg
	if arg == "-" {
		name = "stdin"
		if a.env.Stdin == nil {
			return "", "", errors.New("no standard input to read the policy from")
		}
		r = a.env.Stdin
	} else {
		f, err := os.Open(arg)
		if err != nil {
			return "", "", fmt.Errorf("reading policy: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPolicyFile+1))
	if err != nil {
		return "", "", fmt.Errorf("reading policy from %s: %w", name, err)
	}
	if len(b) > maxPolicyFile {
		return "", "", fmt.Errorf("%s: a policy document holds at most %d bytes", name, maxPolicyFile)
	}
	return name, string(b), nil
}

// printChanges says, per user, which destinations a policy edit grants
// and takes away, and which UNIX users their SSH certificates gain and
// lose.
func (a *app) printChanges(changes []wire.PolicyChange) {
	if len(changes) == 0 {
		fmt.Fprintln(a.env.Stdout, "no user gains or loses access")
		return
	}
	for _, ch := range changes {
		user := ch.User
		if user == "" {
			user = "clients without a user"
		}
		fmt.Fprintln(a.env.Stdout, user)
		for _, d := range ch.Gained {
			fmt.Fprintln(a.env.Stdout, "  + "+destText(d))
		}
		for _, d := range ch.Lost {
			fmt.Fprintln(a.env.Stdout, "  - "+destText(d))
		}
		for _, p := range ch.SSHGained {
			fmt.Fprintln(a.env.Stdout, "  + ssh as "+p)
		}
		for _, p := range ch.SSHLost {
			fmt.Fprintln(a.env.Stdout, "  - ssh as "+p)
		}
	}
}

// destText explains the "*" that stands for allow-all.
func destText(d string) string {
	if d == "*" {
		return "* (every routed destination)"
	}
	return d
}

func (a *app) policyReset(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.ResetPolicy(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(resp)
		}
		fmt.Fprintln(a.env.Stdout, "access policy removed: allow-all, every client reaches every routed destination")
		a.printChanges(resp.Changes)
		return nil
	})
}

// policyWhy exits like grep: 0 when allowed, 1 when denied, 2 when there
// is no answer (a bad question, or no coordinator to ask).
func (a *app) policyWhy(c *cli.Context) error {
	if err := argCount(c, 2, "USER IP:PORT[/PROTO] [--json]"); err != nil {
		return &ExitError{Status: 2, Err: err}
	}
	user, dest := c.Args().Get(0), c.Args().Get(1)
	if err := wire.ValidateUser(user); err != nil {
		return &ExitError{Status: 2, Err: err}
	}
	var d *wire.PolicyDecision
	err := a.withAdmin(c, func(admin *coordclient.Admin) error {
		var err error
		d, err = admin.PolicyWhy(c.Context, user, dest)
		return err
	})
	if err != nil {
		return &ExitError{Status: 2, Err: err}
	}
	if c.Bool("json") {
		if err := a.printJSON(d); err != nil {
			return &ExitError{Status: 2, Err: err}
		}
	} else {
		verdict := "deny"
		if d.Allow {
			verdict = "allow"
		}
		fmt.Fprintf(a.env.Stdout, "%s: %s\n", verdict, d.Reason)
	}
	if !d.Allow {
		return &ExitError{Status: 1}
	}
	return nil
}

// policyNote is the line `nodes ls` prints about the access policy.
func policyNote(doc *wire.PolicyDocument) string {
	if doc.Mode != wire.PolicyEnforced {
		return "access policy: allow-all (no document set): every client reaches every routed destination"
	}
	note := "access policy: " + doc.Reason
	if doc.SetAt != nil {
		note += "; set " + doc.SetAt.Local().Format("2006-01-02 15:04")
	}
	return note + " (see: warren policy get)"
}
