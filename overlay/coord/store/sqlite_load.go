package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Load implements Store.
func (s *SQLite) Load(ctx context.Context) (*State, error) {
	st, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading state: %w", err)
	}
	return st, nil
}

func (s *SQLite) load(ctx context.Context) (*State, error) {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	var st State
	if st.Version, err = readVersion(ctx, tx); err != nil {
		return nil, err
	}
	if st.Tokens, err = loadTokens(ctx, tx); err != nil {
		return nil, err
	}
	if st.Nodes, err = loadNodes(ctx, tx); err != nil {
		return nil, err
	}
	if st.Routes, err = loadRoutes(ctx, tx); err != nil {
		return nil, err
	}
	if st.Split, err = loadSplit(ctx, tx); err != nil {
		return nil, err
	}
	if st.Hosts, err = loadHosts(ctx, tx); err != nil {
		return nil, err
	}
	if st.Policy, err = loadPolicy(ctx, tx); err != nil {
		return nil, err
	}
	if st.Users, err = loadUsers(ctx, tx); err != nil {
		return nil, err
	}
	if st.DNS, err = loadDNS(ctx, tx); err != nil {
		return nil, err
	}
	return &st, nil
}

func readVersion(ctx context.Context, tx *sql.Tx) (uint64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'version'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading version: %w", err)
	}
	return uint64(v), nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// tokenColumns are the columns scanToken reads, in its order.
const tokenColumns = `id, name, role, hash, reusable, uses, created_at, expires_at, revoked, user`

func scanToken(sc scanner) (Token, error) {
	var t Token
	var role, created string
	var expires sql.NullString
	err := sc.Scan(&t.ID, &t.Name, &role, &t.Hash, &t.Reusable, &t.Uses, &created, &expires, &t.Revoked, &t.User)
	if err != nil {
		return Token{}, err
	}
	t.Role = wire.Role(role)
	if t.CreatedAt, err = parseTime(created); err != nil {
		return Token{}, fmt.Errorf("token %s: %w", t.ID, err)
	}
	if t.ExpiresAt, err = parseTimePtr(expires); err != nil {
		return Token{}, fmt.Errorf("token %s: %w", t.ID, err)
	}
	return t, nil
}

func loadTokens(ctx context.Context, tx *sql.Tx) ([]Token, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens`)
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	defer rows.Close()
	var ts []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("reading tokens: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	slices.SortFunc(ts, func(a, b Token) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return ts, nil
}

func loadNodes(ctx context.Context, tx *sql.Tx) ([]Node, error) {
	rows, err := tx.QueryContext(ctx, `SELECT
		id, name, role, public_key, address, cred_hash, token_id, enrolled_at, last_seen, user
		FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	defer rows.Close()
	var ns []Node
	for rows.Next() {
		var n Node
		var role, key, addr, enrolled string
		var seen, tokenID sql.NullString
		if err := rows.Scan(&n.ID, &n.Name, &role, &key, &addr, &n.CredHash, &tokenID, &enrolled, &seen, &n.User); err != nil {
			return nil, fmt.Errorf("reading nodes: %w", err)
		}
		n.TokenID = tokenID.String
		n.Role = wire.Role(role)
		if n.PublicKey, err = wire.ParseKey(key); err != nil {
			return nil, fmt.Errorf("node %s: public key: %w", n.ID, err)
		}
		if n.Address, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		if n.EnrolledAt, err = parseTime(enrolled); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		if n.LastSeen, err = parseTimePtr(seen); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		ns = append(ns, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	return ns, nil
}

func loadRoutes(ctx context.Context, tx *sql.Tx) ([]wire.Route, error) {
	rows, err := tx.QueryContext(ctx, `SELECT prefix, connector, comment, created_at, proxy_protocol, allow_connector_host FROM routes`)
	if err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
	}
	defer rows.Close()
	var rs []wire.Route
	for rows.Next() {
		var r wire.Route
		var prefix, created string
		if err := rows.Scan(&prefix, &r.Connector, &r.Comment, &created, &r.ProxyProtocol, &r.AllowConnectorHost); err != nil {
			return nil, fmt.Errorf("reading routes: %w", err)
		}
		if r.Prefix, err = netip.ParsePrefix(prefix); err != nil {
			return nil, fmt.Errorf("reading routes: %w", err)
		}
		if r.CreatedAt, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("route %v: %w", r.Prefix, err)
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
	}
	slices.SortFunc(rs, func(a, b wire.Route) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return rs, nil
}

func loadSplit(ctx context.Context, tx *sql.Tx) (*wire.SplitPolicy, error) {
	var b []byte
	err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'split'`).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading split policy: %w", err)
	}
	var p wire.SplitPolicy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decoding split policy: %w", err)
	}
	return &p, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

func parseTimePtr(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
