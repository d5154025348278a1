// Package agent is what every node role (the connector, the laptop daemon)
// shares: enrolling once (with a token, or a laptop by single sign-on:
// LoginEnroll) and keeping the identity in the state directory,
// holding the control session, and saving every netmap to disk before the
// role applies it, so that after a restart the role can bring its data
// plane up from the last netmap even while the coordinator is unreachable.
//
// It builds on coordclient and nodestate and must not import roles
// (client, connector, coord), cmd, wireguard-go, gVisor or netlink.
package agent
