// Package dataplane measures Warren's data plane against its anchors in
// one run: iperf3 over a bare veth, over stock wireguard-go (TUN↔TUN, built
// from the module in go.mod), through a naive connector built from the
// same modules (wireguard-go's tun/netstack and io.Copy; naive_test.go)
// and through Warren on both of its paths, each
// in its own test/netlab topology: laptop → relay → connector → LAN host
// with both nodes --relay-only, and laptop → connector → LAN host over the
// direct path punched through both NATs, and again on the direct path
// with a generated 200-rule access policy loaded (policy_test.go); TCP
// connect time and 1-byte request/response round trips; retransmits;
// CPU-seconds per GB and peak RSS of each process. Each Warren figure is also printed as a ratio to
// stock wireguard-go and to the naive connector in the same run, relay
// throughput as a ratio to direct, the policy path's figures as a ratio
// to the direct path's, and everything is written as JSON.
// A second benchmark, BenchmarkUserspace (userspace_test.go), measures the
// userspace client (`warren daemon --userspace` as an ordinary user,
// through its SOCKS5 proxy) against the TUN client on the same laptop in
// one run: a bulk download and the time to the first byte of a new
// connection, with the same Go client both ways.
// It asserts no speed: machines are noisy.
//
// It owns only its benchmark (`make bench`, as root; it skips otherwise)
// and the results it writes. It has no non-test code, drives Warren only
// through the built binary and must not import Warren packages other than
// test/netlab; the one exception is the unit test of the access-policy
// generator, which checks the document against the pure policy package
// (the compiler and the connector's Matcher) without root. Everything runs in network namespaces it creates and
// deletes; nothing is created in the root namespace.
package dataplane
