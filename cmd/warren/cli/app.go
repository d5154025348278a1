package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/service"
)

// Env is what the app may touch of the outside world.
type Env struct {
	// Service is the machine warren service installs on; nil is this
	// one (service.Local).
	Service *service.Host
	// Stdin is read by commands given "-" for a file; nil reads nothing.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable; nil reads none.
	Getenv func(string) string
	// OpenURL opens a link in the desktop's browser (for a login); nil
	// runs xdg-open.
	OpenURL func(url string) error
	// Getuid is the user's uid (for the userspace daemon's socket); nil
	// is os.Getuid.
	Getuid func() int
	// Exists reports whether a file exists (the system daemon's socket);
	// nil asks the file system.
	Exists func(path string) bool
}

// Roles are the long-running programs warren can be; main wires them to
// the composition root.
type Roles struct {
	Coordinator func(context.Context, CoordinatorOptions) error
	Connector   func(context.Context, ConnectorOptions) error
	Daemon      func(context.Context, DaemonOptions) error
}

// Environment variables the app reads.
const (
	EnvAdminToken     = "WARREN_ADMIN_TOKEN"
	EnvAdminTokenFile = "WARREN_ADMIN_TOKEN_FILE"
	EnvSocket         = "WARREN_SOCKET"
)

// New builds the warren command-line app.
func New(env Env, roles Roles) *cli.App {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.OpenURL == nil {
		env.OpenURL = xdgOpen
	}
	if env.Getuid == nil {
		env.Getuid = os.Getuid
	}
	if env.Exists == nil {
		env.Exists = func(path string) bool {
			_, err := os.Stat(path)
			return err == nil
		}
	}
	// Human output is escaped (see textWriter); --json output is not.
	a := &app{env: env, roles: roles, jsonOut: env.Stdout}
	a.env.Stdout, a.env.Stderr = newTextWriter(env.Stdout), newTextWriter(env.Stderr)
	app := &cli.App{
		Name:      "warren",
		Usage:     "a self-hosted WireGuard overlay for reaching private networks",
		Writer:    a.env.Stdout,
		ErrWriter: a.env.Stderr,
		// Errors go back to main, which prints them once and picks the
		// exit code; urfave must not exit the process itself.
		ExitErrHandler:       func(*cli.Context, error) {},
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "admin-token-file", Usage: "file holding an admin token (or set " + EnvAdminToken + " to the token itself)", EnvVars: []string{EnvAdminTokenFile}},
			&cli.StringFlag{Name: "data", Usage: "on the coordinator host: its data directory, whose admin.token is used"},
			&cli.StringFlag{Name: "socket", Usage: "the laptop daemon's control socket (default " + ctl.DefaultSocket + " if it exists, else the userspace daemon's in $XDG_RUNTIME_DIR/warren)", EnvVars: []string{EnvSocket}},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log debug detail"},
		},
		Commands: []*cli.Command{
			a.upCommand(),
			a.downCommand(),
			a.statusCommand(),
			a.whyCommand(),
			a.ncCommand(),
			a.setCommand(),
			a.loginCommand(),
			a.logoutCommand(),
			a.sshCertCommand(),
			a.coordinatorCommand(),
			a.connectorCommand(),
			a.daemonCommand(),
			a.tokenCommand(),
			a.routesCommand(),
			a.nodesCommand(),
			a.splitCommand(),
			a.hostsCommand(),
			a.dnsCommand(),
			a.policyCommand(),
			a.flowsCommand(),
			a.usersCommand(),
			a.sshCACommand(),
			a.serviceCommand(),
		},
	}
	oneLineUsageErrors(app.Commands, "warren")
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return fmt.Errorf("%w (see: warren --help)", err)
	}
	return app
}

// app carries what every command needs.
type app struct {
	// env's Stdout and Stderr escape control characters: every human
	// printer writes there.
	env   Env
	roles Roles
	// jsonOut is the unescaped stdout, for --json output and the bytes
	// warren nc carries only.
	jsonOut io.Writer
}

// logger returns the logger role commands use: text on stderr.
func (a *app) logger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(a.env.Stderr, &slog.HandlerOptions{Level: level}))
}

// oneLineUsageErrors makes every command report bad flags in one line
// pointing at its help, instead of printing the whole help text.
func oneLineUsageErrors(cmds []*cli.Command, parent string) {
	for _, cmd := range cmds {
		path := parent + " " + cmd.Name
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w (see: %s --help)", err, path)
		}
		oneLineUsageErrors(cmd.Subcommands, path)
	}
}

// argCount checks the number of positional arguments.
func argCount(c *cli.Context, want int, usage string) error {
	if c.NArg() != want {
		return fmt.Errorf("usage: warren %s %s", commandPath(c), usage)
	}
	return nil
}

func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}
