package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"

	"github.com/warrennet/warren/overlay/wire"
)

// migrationDNS is step 6: the split-DNS domains, each with its servers as
// their canonical text separated by commas, in the admin's order.
const migrationDNS = `
CREATE TABLE dns (
	domain     TEXT NOT NULL PRIMARY KEY,
	servers    TEXT NOT NULL,
	updated_at TEXT NOT NULL
) STRICT;
`

// SetDNS implements Store.
func (s *SQLite) SetDNS(ctx context.Context, d wire.DNSDomain) (uint64, error) {
	servers := make([]string, len(d.Servers))
	for i, a := range d.Servers {
		if !a.IsValid() {
			return 0, fmt.Errorf("setting dns %s: server %v is invalid", d.Domain, a)
		}
		servers[i] = a.String()
	}
	if len(servers) == 0 {
		return 0, fmt.Errorf("setting dns %s: no servers", d.Domain)
	}
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO dns (domain, servers, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (domain) DO UPDATE SET servers = excluded.servers, updated_at = excluded.updated_at`,
			d.Domain, strings.Join(servers, ","), formatTime(d.UpdatedAt))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("setting dns %s: %w", d.Domain, err)
	}
	return v, nil
}

// RemoveDNS implements Store.
func (s *SQLite) RemoveDNS(ctx context.Context, domain string) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM dns WHERE domain = ?`, domain)
		return affectedOne(res, err)
	})
	if err != nil {
		return 0, fmt.Errorf("removing dns %s: %w", domain, err)
	}
	return v, nil
}

func loadDNS(ctx context.Context, tx *sql.Tx) ([]wire.DNSDomain, error) {
	rows, err := tx.QueryContext(ctx, `SELECT domain, servers, updated_at FROM dns ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("reading dns: %w", err)
	}
	defer rows.Close()
	var ds []wire.DNSDomain
	for rows.Next() {
		var d wire.DNSDomain
		var servers, updated string
		if err := rows.Scan(&d.Domain, &servers, &updated); err != nil {
			return nil, fmt.Errorf("reading dns: %w", err)
		}
		for _, t := range strings.Split(servers, ",") {
			a, err := netip.ParseAddr(t)
			if err != nil {
				return nil, fmt.Errorf("dns %s: %w", d.Domain, err)
			}
			d.Servers = append(d.Servers, a)
		}
		if d.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, fmt.Errorf("dns %s: %w", d.Domain, err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading dns: %w", err)
	}
	return ds, nil
}
