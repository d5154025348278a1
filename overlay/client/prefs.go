package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

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
	// Operator may, besides root, read the status and get SSH
	// certificates for themselves (ctl.Server decides by it).
	Operator *ctl.Operator `json:"operator,omitempty"`
	// LoginURL and LoginPin are the coordinator of the last login, which
	// `warren login` uses when given none.
	LoginURL string `json:"login_url,omitempty"`
	LoginPin string `json:"login_pin,omitempty"`
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

// Prefs implements ctl.Backend. Unreadable prefs read as the defaults
// (no operator: the socket then serves root alone).
func (e *Engine) Prefs(context.Context) ctl.Prefs {
	p, err := e.loadPrefs()
	if err != nil {
		e.log.Warn("reading prefs", "err", err)
	}
	return ctl.Prefs{LANWins: p.LANWins, Operator: p.Operator}
}

// EditPrefs implements ctl.Backend: a partial edit of the daemon's
// settings, applied at once to the running tunnel. A refused edit changes
// nothing.
func (e *Engine) EditPrefs(ctx context.Context, edit ctl.PrefsEdit) (ctl.Prefs, error) {
	var op *ctl.Operator
	if edit.Operator != nil {
		var err error
		if op, err = lookupOperator(*edit.Operator); err != nil {
			return ctl.Prefs{}, err
		}
	}
	e.upMu.Lock()
	defer e.upMu.Unlock()
	if err := e.editPrefs(func(p *prefs) {
		if edit.LANWins != nil {
			p.LANWins = *edit.LANWins
		}
		if edit.Operator != nil {
			p.Operator = op
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
	if s != nil && edit.LANWins != nil {
		if err := e.reapply(ctx, s); err != nil {
			return ctl.Prefs{}, fmt.Errorf("applying the new setting: %w", err)
		}
	}
	return ctl.Prefs{LANWins: p.LANWins, Operator: p.Operator}, nil
}

// lookupOperator resolves a local user name (or a numeric uid) to the
// operator; "" is none.
func lookupOperator(name string) (*ctl.Operator, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr != nil {
			return nil, fmt.Errorf("no local user named %q", name)
		}
		if u, err = user.LookupId(name); err != nil {
			// A uid without a name (no passwd entry) is still a uid.
			u = &user.User{Uid: name, Username: name}
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q has no numeric uid (%q)", name, u.Uid)
	}
	if uid == 0 {
		return nil, errors.New("root may do everything already: name another user as the operator")
	}
	return &ctl.Operator{Name: u.Username, UID: uint32(uid)}, nil
}
