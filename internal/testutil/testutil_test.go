package testutil

import (
	"strings"
	"testing"
)

func TestLeaked(t *testing.T) {
	stop := make(chan struct{})
	go parkedForTestLeaked(stop)
	WaitFor(t, "the goroutine to park", func() bool { return Leaked("parkedForTestLeaked") != "" })
	if got := Leaked("parkedForTestLeaked"); !strings.Contains(got, "testutil.parkedForTestLeaked") {
		t.Errorf("Leaked = %q", got)
	}
	close(stop)
	NoLeaks(t, "parkedForTestLeaked")
}

func parkedForTestLeaked(stop chan struct{}) { <-stop }
