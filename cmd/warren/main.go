// Command warren is the single binary of Warren: coordinator, connector,
// laptop daemon, and the user and admin commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/cmd/warren/run"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := cli.New(cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, cli.Roles{Coordinator: run.Coordinator, Connector: run.Connector, Daemon: run.Daemon})
	err := app.RunContext(ctx, cli.Permute(app, os.Args))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren: "+err.Error())
		os.Exit(1)
	}
}
