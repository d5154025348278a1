//go:build !linux

package client

import "errors"

// writeUserFile replaces dir/name on behalf of a local user; see the Linux
// version. Elsewhere the daemon writes no certificates.
func writeUserFile(dir, name string, uid, gid uint32, data []byte) error {
	return errors.New("writing certificates for a user is supported on Linux only")
}
