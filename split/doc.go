// Package split owns Warren's split-tunnel algebra: the admin's policy (an
// include or exclude mode, each mode with its own list of commented IPv4 and
// IPv6 prefixes, the exclude list seeded with builtin private and special
// ranges), its validation, and the computation that turns the policy, the
// routes the coordinator pushed and the hard guards (coordinator, relay and
// default gateway addresses) into the minimal set of prefixes to tunnel, the
// routed space that is bypassed with the reason for each part, warnings for
// the admin, and a per-address explanation for `warren why`. For one
// machine it also settles the overlap of its own LANs with tunnelled space
// (ComputeLocal): by default the tunnel wins and the LAN's halves are
// installed beside it; when the LAN wins it becomes a guard.
//
// A prefix an admin routes is carved out of the builtin excludes, so a fresh
// route just works; only an admin-written exclude can shadow a route, and
// Compute says so in a warning. Guards always win.
//
// It is pure: values in, values out. It performs no I/O, starts no
// goroutines and logs nothing. It must not import any Warren package other
// than routes.
package split
