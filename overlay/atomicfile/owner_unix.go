//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

// owners returns the owner of fi and the effective user of this process.
func owners(fi os.FileInfo) (owner, me int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), os.Geteuid(), true
}
