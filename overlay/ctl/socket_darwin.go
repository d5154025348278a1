package ctl

// DefaultSocket is where the daemon listens unless told otherwise. macOS
// has no /run (its root volume is read-only); /var/run is root's.
const DefaultSocket = "/var/run/warren/warren.sock"
