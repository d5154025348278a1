package run

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/warrennet/warren/platform"
)

// TestTUNSupported: on a system without the TUN daemon's platform code
// (Windows), the daemon refuses with one line pointing at userspace mode.
func TestTUNSupported(t *testing.T) {
	if err := tunSupported(nil); err != nil {
		t.Errorf("tunSupported(nil) = %v, want nil", err)
	}
	other := errors.New("something else")
	if err := tunSupported(other); err != other {
		t.Errorf("tunSupported(%v) = %v, want it unchanged", other, err)
	}
	err := tunSupported(fmt.Errorf("platform: %w on %s", platform.ErrNotSupported, runtime.GOOS))
	want := "the TUN daemon is not supported on " + runtime.GOOS + " yet; run: warren daemon --userspace"
	if err == nil || err.Error() != want || strings.Contains(err.Error(), "\n") {
		t.Errorf("tunSupported(ErrNotSupported) = %v, want %q", err, want)
	}
}
