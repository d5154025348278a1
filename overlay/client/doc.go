// Package client is the laptop daemon's engine: it enrolls the node, holds
// its control session, and applies every netmap to the machine — the
// split-tunnel computation decides which routed prefixes enter the tunnel,
// wireguard-go (through wgdev) gets each connector with exactly the
// prefixes it serves, and the OS gets a route for each tunnelled prefix.
// It implements ctl.Backend for `warren up`, `down`, `status`, `why`,
// `set`, `login`, `logout` and `ssh-cert`: it enrolls with a token or by
// single sign-on (the login waits for a person to log in at the
// coordinator's identity provider), and keeps the SSH certificates local
// users asked for renewed while the tunnel is up, writing each as its
// user (certwrite_linux.go).
//
// DialContext opens connections as a program on the laptop reaches them
// through Warren, for the local proxies and `warren nc` (the control
// socket's dial endpoint): host names from the netmap's named hosts and
// nodes first, then the system's resolver; a destination the tunnel
// carries (an overlay address or one inside an installed prefix: the TUN
// mode's split decision) through the tunnel, any other directly.
//
// The OS integration comes in through the Platform interface, so the
// engine runs in tests without root. Userspace is the Platform of the
// userspace mode (`warren daemon --userspace`): the tunnel device is a
// local netstack through which DialContext dials, its Router gives the
// stack the node's addresses and installs nothing, and the host's
// gateways and LANs are read as an ordinary user can. client is a role: it must not import
// other roles (connector, coord) or cmd.
package client
