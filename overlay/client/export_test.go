package client

import "time"

// SetAddrRetry makes failed lookups of the guarded hosts retried every d
// until the returned function restores the default.
func SetAddrRetry(d time.Duration) (restore func()) {
	old := addrRetry
	addrRetry = d
	return func() { addrRetry = old }
}
