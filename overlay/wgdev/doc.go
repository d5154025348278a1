// Package wgdev owns a wireguard-go *device.Device and configures it from
// typed values. A Config (private key, listen port, peers with their
// AllowedIPs, endpoint and keepalive) is validated, rendered to wireguard-go's
// UAPI text and applied by diff against the configuration applied last:
// new peers are added, gone peers removed and changed peers updated in
// place, so a peer whose configuration did not change is never touched and
// keeps its session. Stats reads the device's per-peer counters back for
// `warren status`.
//
// The UAPI rendering and parsing are pure functions, golden-tested against
// testdata/*.uapi and fuzzed. wireguard-go's logger is adapted to an
// injected *slog.Logger, rate-limited per message.
//
// wgdev is a mechanism: it takes a tun.Device and a conn.Bind from its
// caller and knows nothing of where they come from. It must not import the
// roles (coord, client, connector), cmd, gVisor, netlink or platform.
package wgdev
