// Command warren is the single binary of Warren: coordinator, connector,
// laptop daemon, and the user and admin commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/cmd/warren/run"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := cli.New(cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, cli.Roles{Coordinator: run.Coordinator, Connector: run.Connector, Daemon: run.Daemon})
	args := cli.Permute(app, os.Args)
	stopProfile := startProfile(os.Getenv(profileEnv), commandName(app, args))
	err := app.RunContext(ctx, args)
	stop()
	stopProfile()
	if err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "warren: "+cli.EscapeLines(msg))
		}
		os.Exit(cli.ExitStatus(err))
	}
}

// profileEnv names a directory: when set, every warren process writes a
// CPU profile of its whole run there, as <command>-<pid>.pprof (see
// docs/PERFORMANCE.md). A profile is complete only if the process exits
// normally, for example on SIGTERM.
const profileEnv = "WARREN_CPUPROFILE"

// commandName is the top-level command that args (permuted) run, such as
// "daemon", or "warren" when there is none.
func commandName(app *ucli.App, args []string) string {
	for _, a := range args[1:] {
		if c := app.Command(a); c != nil {
			return c.Name
		}
	}
	return "warren"
}

// startProfile starts a CPU profile into dir, named after the command, and
// returns what stops it. An empty dir, or a profile that cannot start,
// profiles nothing.
func startProfile(dir, name string) func() {
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+"-"+strconv.Itoa(os.Getpid())+".pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren: "+profileEnv+": "+err.Error())
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		writePeakHeap(filepath.Join(dir, name+"-"+strconv.Itoa(os.Getpid())+".heap.pprof"), stop)
	}()
	return func() {
		close(stop)
		<-done
		pprof.StopCPUProfile()
		f.Close()
	}
}

// writePeakHeap writes a heap profile to path each time the heap in use
// reaches a new peak, checking every second until stop is closed.
func writePeakHeap(path string, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var peak uint64
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse <= peak+peak/10 {
			continue
		}
		peak = ms.HeapInuse
		if f, err := os.Create(path); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
}
