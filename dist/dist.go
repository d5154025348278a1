// Package dist holds the service files Warren ships: the systemd units
// (systemd/warren.service for the TUN daemon, systemd/warren-user.service
// for userspace mode) and the launchd property lists
// (launchd/net.warren.daemon.plist, launchd/net.warren.userspace.plist).
// They are the one source of the text warren service install writes:
// the files are embedded here, and the installer only puts the running
// binary's path where they say Executable.
//
// dist is data. It imports no other Warren package and does no I/O.
package dist

import "embed"

// Files are the service files, by their path in this directory
// ("systemd/warren.service", ...).
//
//go:embed systemd/*.service launchd/*.plist
var Files embed.FS

// Executable is the path of the warren binary the files name. Each file
// holds it exactly once, as the program the service runs.
const Executable = "/usr/local/bin/warren"

// Marker is in every file, near its top: a file that holds it was written
// by warren service install, and warren service uninstall may remove it.
const Marker = "Managed by warren service install"

// The files.
const (
	SystemdSystem    = "systemd/warren.service"
	SystemdUser      = "systemd/warren-user.service"
	LaunchdDaemon    = "launchd/net.warren.daemon.plist"
	LaunchdUserspace = "launchd/net.warren.userspace.plist"
)
