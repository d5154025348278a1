// Package e2e holds Warren's end-to-end tests: the real warren binary in
// the netlab topology of network namespaces, driven with real programs
// (OpenSSH, curl, dig, ping). They need root and skip with the reason
// otherwise; CI runs them as root after `make deps` installed the tools.
package e2e
