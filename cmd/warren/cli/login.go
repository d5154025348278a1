package cli

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// loginTimeout is how long `warren up --coordinator` and `warren login`
// wait by default: the login link's life and a minute.
const loginTimeout = wire.LoginTTL + time.Minute

// loginFlags name the coordinator a login happens at.
func loginFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "coordinator", Usage: "log in (single sign-on) at the coordinator at this URL, on a machine not enrolled yet"},
		&cli.StringFlag{Name: "pin", Usage: "SHA-256 of the coordinator's certificate in hex (for a self-signed one; an admin has it)"},
	}
}

func (a *app) loginCommand() *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "log this machine in by single sign-on (logging it out first if it is enrolled) and bring the tunnel up",
		ArgsUsage: " ",
		Flags: append(loginFlags(),
			&cli.DurationFlag{Name: "timeout", Value: loginTimeout, Usage: "give up waiting after this long"},
		),
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--coordinator URL [--pin SHA256]]"); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			if err := cl.Login(ctx, ctl.UpRequest{Coordinator: c.String("coordinator"), Pin: c.String("pin")}, a.progress); err != nil {
				return err
			}
			fmt.Fprintln(a.env.Stdout, "up: traffic to the routed prefixes now goes through Warren (see: warren status)")
			return nil
		},
	}
}

func (a *app) logoutCommand() *cli.Command {
	return &cli.Command{
		Name:      "logout",
		Usage:     "take the tunnel down, remove this machine at the coordinator and forget its identity",
		ArgsUsage: " ",
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, ""); err != nil {
				return err
			}
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			res, err := cl.Logout(c.Context)
			if err != nil {
				return err
			}
			if res.Removed {
				fmt.Fprintf(a.env.Stdout, "logged out: node %s removed at the coordinator\n", res.Node)
				return nil
			}
			fmt.Fprintf(a.env.Stdout, "logged out here, but the coordinator could not be told (%s): an admin should run warren nodes rm %s\n", res.Error, res.Node)
			return nil
		},
	}
}

// progress prints one step of up or login; the step asking a person to
// log in also opens the link in their browser when that is safe.
func (a *app) progress(p ctl.Progress) {
	if p.LoginURL == "" {
		fmt.Fprintln(a.env.Stdout, "• "+p.Message)
		return
	}
	fmt.Fprintf(a.env.Stdout, "To log in, open: %s (code %s)\n", p.LoginURL, p.Code)
	if a.mayOpenBrowser() {
		// Best effort: the line above is the way that always works.
		_ = a.env.OpenURL(p.LoginURL)
	}
}

// mayOpenBrowser: a desktop session is there (DISPLAY or WAYLAND_DISPLAY)
// and this is not sudo (or doas, or pkexec), which would open root's
// browser on someone else's display.
func (a *app) mayOpenBrowser() bool {
	for _, v := range []string{"SUDO_USER", "DOAS_USER", "PKEXEC_UID"} {
		if a.env.Getenv(v) != "" {
			return false
		}
	}
	return a.env.Getenv("DISPLAY") != "" || a.env.Getenv("WAYLAND_DISPLAY") != ""
}

// xdgOpen opens url in the desktop's browser without waiting for it: the
// CLI exits when the login is done, and its exit reaps xdg-open.
func xdgOpen(url string) error {
	cmd := exec.Command("xdg-open", url)
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}
