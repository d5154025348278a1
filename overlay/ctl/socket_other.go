//go:build !darwin

package ctl

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/warren/warren.sock"
