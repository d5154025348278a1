// Package proxy serves the laptop's local proxies: SOCKS5 (CONNECT and UDP
// ASSOCIATE, RFC 1928, with optional username/password, RFC 1929) and an
// HTTP proxy (CONNECT, and plain requests with an absolute URI, optional
// Basic auth). Every connection it opens for a client goes through one
// Dialer, the consumer's: the proxy decides nothing about where a
// destination is reached, and passes names (SOCKS5 domain addresses, HTTP
// hosts) to the Dialer unresolved, so they are resolved at the tunnel's
// side.
//
// The SOCKS5 wire format is github.com/things-go/go-socks5's: its server
// reads the greeting, the authentication and the request; this package
// supplies the name resolver (none: names stay names), the credential
// check, the CONNECT handler (the Dialer, replies mapped from the dial's
// errno, half-close) and the UDP ASSOCIATE handler (associate.go: one
// connected UDP conn from the Dialer per destination, bounded and idle
// timed, datagrams parsed and framed with the library's statute package).
//
// Server.Run owns every goroutine: the accept loops, one goroutine per
// client connection (the HTTP server's, and this package's for SOCKS5),
// one per UDP association's relay socket and one per destination of an
// association. When Run's ctx ends, the listeners close, every flow is
// reset and every association closed, and Run returns once every one of
// those goroutines has.
//
// It is a mechanism: it must not import roles (overlay/client, connector,
// coord) or cmd. Among Warren packages it imports only netstack, for its
// byte pipe with half-close (netstack.ProxyCount).
package proxy
