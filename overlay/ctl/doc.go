// Package ctl is the laptop daemon's local control socket: JSON over HTTP
// on a unix socket (mode 0600), with the types both ends share. The daemon
// serves a Backend; `warren up`, `down` and `status` are Clients.
//
// It must not import roles, cmd, wireguard-go, gVisor or netlink.
package ctl
