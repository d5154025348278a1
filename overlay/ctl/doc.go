// Package ctl is the laptop daemon's local control socket: JSON over HTTP
// on a unix socket, with the types both ends share. The daemon serves a
// Backend; `warren up`, `down`, `status`, `login`, `logout`, `ssh-cert`…
// are Clients.
//
// The socket is mode 0666: every request is authorised by the caller's
// uid as the kernel reports it (SO_PEERCRED on Linux, LOCAL_PEERCRED on
// macOS). Where the kernel reports nothing (Windows), a caller that sends
// the cookie the daemon keeps beside the socket, readable by its user
// only, is taken as the daemon's own user, and no one else is anything
// (cookie.go). Root and the daemon's own
// user may make every call; the operator (`warren set --operator USER`)
// may read the status, why and the settings, get SSH certificates for
// themselves and open connections through the daemon; anyone else is
// refused with 403 and one line.
//
// The dial endpoint (dial.go, Client.Dial, `warren nc`) is an HTTP
// upgrade: once the daemon has connected, the socket carries that TCP
// connection's bytes, half-closes passed on both ways.
//
// It must not import roles, cmd, wireguard-go, gVisor or netlink.
package ctl
