package nodestate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

// TestForget: logout leaves a node that is not enrolled and replays no
// netmap, keeps the directory's other files, and may run twice.
func TestForget(t *testing.T) {
	d, _ := saved(t)
	if err := d.SaveNetMap(&wire.NetMap{Version: 3}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(d.Path(), "prefs.json")
	if err := os.WriteFile(other, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := d.Forget(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.LoadIdentity(); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("identity after Forget: %v", err)
		}
		if _, err := d.LoadNetMap(); !errors.Is(err, ErrNoNetMap) {
			t.Errorf("netmap after Forget: %v", err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Forget removed another file: %v", err)
	}
}
