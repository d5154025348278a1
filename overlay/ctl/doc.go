// Package ctl is the laptop daemon's local control socket: JSON over HTTP
// on a unix socket, with the types both ends share. The daemon serves a
// Backend; `warren up`, `down`, `status`, `login`, `logout`, `ssh-cert`…
// are Clients.
//
// The socket is mode 0666: every request is authorised by the caller's
// uid as the kernel reports it (SO_PEERCRED). Root and the daemon's own
// user may make every call; the operator (`warren set --operator USER`)
// may read the status, why and the settings and get SSH certificates for
// themselves; anyone else is refused with 403 and one line.
//
// It must not import roles, cmd, wireguard-go, gVisor or netlink.
package ctl
