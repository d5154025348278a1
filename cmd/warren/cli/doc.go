// Package cli defines warren's command line: one urfave/cli app built by
// New with injected output streams and environment, one file per command.
// User and admin commands are thin clients of the coordinator's admin API
// (through coordclient) and, later, of the local daemon's control socket.
// Role commands (coordinator, connector, daemon) parse their flags here and
// hand a typed options struct to a runner injected from main, so this
// package never imports the data plane (wireguard-go, gVisor, netlink,
// wgdev, netstack, platform) or the store.
//
// Nothing here calls os.Exit or reads os.Args or the process environment
// directly; main maps errors to exit codes.
package cli
