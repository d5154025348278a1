package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warrennet/warren/overlay/atomicfile"
)

// prefs are the daemon's own settings, kept in the state directory.
type prefs struct {
	// WantUp: the person ran `warren up` and not `warren down` since, so a
	// restarted daemon brings the tunnel back.
	WantUp bool `json:"want_up"`
}

const prefsFile = "prefs.json"

func (e *Engine) loadPrefs() (prefs, error) {
	var p prefs
	b, err := os.ReadFile(filepath.Join(e.dir.Path(), prefsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("reading prefs: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("reading prefs: %w", err)
	}
	return p, nil
}

func (e *Engine) savePrefs(p prefs) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(e.dir.Path(), prefsFile), append(b, '\n'), 0o600)
}
