package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/ctl"
)

// prefs are the daemon's own settings, kept in the state directory.
type prefs struct {
	// WantUp: the person ran `warren up` and not `warren down` since, so a
	// restarted daemon brings the tunnel back.
	WantUp bool `json:"want_up"`
	// LANWins lets this machine's own LANs win over tunnelled prefixes
	// that overlap them. By default the tunnel wins: a café LAN must not
	// capture an office route.
	LANWins bool `json:"lan_wins,omitempty"`
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

// editPrefs changes some prefs and keeps the others. Call with upMu held.
func (e *Engine) editPrefs(edit func(*prefs)) error {
	p, err := e.loadPrefs()
	if err != nil {
		return err
	}
	edit(&p)
	return e.savePrefs(p)
}

// EditPrefs implements ctl.Backend: a partial edit of the daemon's
// settings, applied at once to the running tunnel.
func (e *Engine) EditPrefs(ctx context.Context, edit ctl.PrefsEdit) (ctl.Prefs, error) {
	e.upMu.Lock()
	defer e.upMu.Unlock()
	if err := e.editPrefs(func(p *prefs) {
		if edit.LANWins != nil {
			p.LANWins = *edit.LANWins
		}
	}); err != nil {
		return ctl.Prefs{}, err
	}
	p, err := e.loadPrefs()
	if err != nil {
		return ctl.Prefs{}, err
	}
	e.mu.Lock()
	s := e.running
	e.mu.Unlock()
	if s != nil {
		if err := e.reapply(ctx, s); err != nil {
			return ctl.Prefs{}, fmt.Errorf("applying the new setting: %w", err)
		}
	}
	return ctl.Prefs{LANWins: p.LANWins}, nil
}
