// Package coordclienttest provides Server, an in-memory fake coordinator
// speaking Warren's HTTP API (enroll, control stream, admin endpoints) over
// an httptest server, so node-side code and the CLI can be tested without
// the real coordinator.
//
// The fake keeps its state in memory, answers with wire.Error bodies like
// the real coordinator, and has knobs the real one lacks: dropping or
// silencing streams, failing the next call to a path, and counters of
// connects and acks. It validates what the protocol says and little more;
// the real coordinator's rules (address allocation, route validation)
// belong to overlay/coord and are only approximated here.
//
// It imports only the standard library, testing and overlay/wire.
package coordclienttest
