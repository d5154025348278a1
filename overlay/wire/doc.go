// Package wire defines the coordinator⇄node and admin protocol: the token
// format, WireGuard keys, the JSON request and response bodies of the HTTP
// API, and the netmap a coordinator pushes to every node.
//
// It is pure: values in, values out. It performs no I/O, starts no goroutines
// and logs nothing. It must not import any other Warren package except routes.
package wire
