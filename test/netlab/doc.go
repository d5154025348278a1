// Package netlab builds the end-to-end topology of network namespaces that
// Warren's e2e tests and demo run in (docs/ARCHITECTURE.md lists it):
//
//	inet     198.51.100.0/24 bridge ("the internet")
//	coord    198.51.100.10              coordinator + relay
//	sitegw   198.51.100.20 / 192.168.0.1  NAT; drops every inbound new connection
//	conn     192.168.0.2                connector
//	lanhost  192.168.0.10, 192.168.1.10 sshd, HTTP, DNS (second LAN prefix on the same bridge)
//	homegw   198.51.100.30 / 10.1.0.1   the laptop's NAT router; drops inbound new connections too
//	laptop   10.1.0.2                   daemon, ssh, curl, dig
//	inet     198.51.100.53              a name server, when ServeNames starts one
//
// Every namespace carries a per-run prefix so runs never collide, and
// Close deletes them all and kills what ran inside. No namespace gets a
// route out of the machine, and nothing is created in the root namespace:
// veth pairs are created inside the namespaces they join. A namespace
// given a resolver (UseResolver) gets /etc/netns/NS/resolv.conf, which
// `ip netns exec` mounts for what the lab starts there; Close removes it.
// UNIX accounts a test needs (sshd's ec2-user on lanhost, the laptop's
// operator) exist the same way, only in their namespace (AddAccounts
// writes /etc/netns/NS/passwd and group, homes in a directory of the
// lab's): no user is ever created on the host, so none can be left
// behind. AddHosts gives a namespace a hosts file the same way.
// StartUserspaceDaemon runs `warren daemon --userspace` as such an
// account, with no privilege (setpriv), its state and control socket
// under the account's home (Options.NoDaemon leaves out the TUN daemon).
// StartCertSSHD runs an sshd that admits only certificates of the
// CA keys it is given (TrustedUserCAKeys, AuthorizedPrincipalsFile per
// account, no authorized keys, no passwords). The site LAN's
// bridge ports steer each flow to one CPU (SteerFlows), so segments from
// lanhost and the connector stay in order as on a real NIC.
//
// It shells out to iproute2 and nft; it must not import Warren packages.
package netlab
