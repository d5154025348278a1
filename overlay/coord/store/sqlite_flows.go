package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// FlowLog is the connectors' flow log. Its writes do not bump the state
// version: no node's netmap depends on it.
type FlowLog interface {
	// InsertFlows stores recs as reported by the connector named
	// connector, in one transaction, ignoring each record whose ID this
	// connector has already reported (a batch sent twice is stored once).
	// It returns the records it stored, in order, with Connector set; the
	// ignored ones are left out. Validation is the caller's job.
	InsertFlows(ctx context.Context, connector string, recs []wire.FlowRecord) ([]wire.FlowRecord, error)
	// QueryFlows returns the records q selects, newest start first.
	QueryFlows(ctx context.Context, q FlowQuery) ([]wire.FlowRecord, error)
	// PruneFlows deletes the records that started before before and
	// returns how many it deleted. It deletes in batches, each its own
	// transaction, so other writes are not held up behind a large prune;
	// on error the batches already committed stay deleted.
	PruneFlows(ctx context.Context, before time.Time) (int, error)
}

// FlowQuery selects flow records. Zero fields select everything.
type FlowQuery struct {
	// User selects the records of exactly this user.
	User string
	// Dest selects the records whose destination address it contains.
	Dest netip.Prefix
	// Since selects the records that started at or after it.
	Since time.Time
	// DeniedOnly selects the denials.
	DeniedOnly bool
	// Limit bounds the number of records; zero or less means no bound.
	Limit int
}

// pruneBatch is how many flow records one pruning transaction deletes.
const pruneBatch = 5000

// InsertFlows implements FlowLog.
func (s *SQLite) InsertFlows(ctx context.Context, connector string, recs []wire.FlowRecord) ([]wire.FlowRecord, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var stored []wire.FlowRecord
	err := s.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO flows
			(connector, id, user, node, src, dst, proto, decision, rule, reason, start, end, bytes_up, bytes_down)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (connector, id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range recs {
			res, err := stmt.ExecContext(ctx, connector, r.ID, r.User, r.Node,
				addrPortText(r.Src), addrPortText(r.Dst), string(r.Proto), r.Decision, r.Rule, r.Reason,
				formatTime(r.Start), formatTime(r.End), clampInt64(r.BytesUp), clampInt64(r.BytesDown))
			if err != nil {
				return fmt.Errorf("record %s: %w", r.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("record %s: %w", r.ID, err)
			}
			if n == 1 {
				r.Connector = connector
				stored = append(stored, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing %d flow records from %s: %w", len(recs), connector, err)
	}
	return stored, nil
}

// QueryFlows implements FlowLog. The destination filter is applied as
// rows are read, newest first, so a narrow one may read many rows to
// fill the limit.
func (s *SQLite) QueryFlows(ctx context.Context, q FlowQuery) ([]wire.FlowRecord, error) {
	var where []string
	var args []any
	if q.User != "" {
		where, args = append(where, "user = ?"), append(args, q.User)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "start >= ?"), append(args, formatTime(q.Since))
	}
	if q.DeniedOnly {
		where, args = append(where, "decision = ?"), append(args, wire.DecisionDeny)
	}
	query := `SELECT connector, id, user, node, src, dst, proto, decision, rule, reason, start, end, bytes_up, bytes_down
		FROM flows`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY start DESC, seq DESC"
	if q.Limit > 0 && !q.Dest.IsValid() {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("querying flows: %w", err)
	}
	defer rows.Close()
	out := []wire.FlowRecord{}
	for rows.Next() {
		r, err := scanFlow(rows)
		if err != nil {
			return nil, fmt.Errorf("reading flows: %w", err)
		}
		if q.Dest.IsValid() && !q.Dest.Contains(r.Dst.Addr()) {
			continue
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading flows: %w", err)
	}
	return out, nil
}

// PruneFlows implements FlowLog.
func (s *SQLite) PruneFlows(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := s.update(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM flows WHERE seq IN
				(SELECT seq FROM flows WHERE start < ? LIMIT ?)`, formatTime(before), pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("pruning flows before %s: %w", formatTime(before), err)
		}
		total += int(n)
		if n < pruneBatch {
			return total, nil
		}
	}
}

func scanFlow(sc scanner) (wire.FlowRecord, error) {
	var r wire.FlowRecord
	var src, dst, proto, start, end string
	var up, down int64
	err := sc.Scan(&r.Connector, &r.ID, &r.User, &r.Node, &src, &dst, &proto, &r.Decision, &r.Rule, &r.Reason,
		&start, &end, &up, &down)
	if err != nil {
		return wire.FlowRecord{}, err
	}
	r.Proto = wire.Proto(proto)
	r.BytesUp, r.BytesDown = uint64(max(up, 0)), uint64(max(down, 0))
	if r.Src, err = parseAddrPort(src); err != nil {
		return wire.FlowRecord{}, fmt.Errorf("flow %s/%s: %w", r.Connector, r.ID, err)
	}
	if r.Dst, err = parseAddrPort(dst); err != nil {
		return wire.FlowRecord{}, fmt.Errorf("flow %s/%s: %w", r.Connector, r.ID, err)
	}
	if r.Start, err = parseTime(start); err != nil {
		return wire.FlowRecord{}, fmt.Errorf("flow %s/%s: %w", r.Connector, r.ID, err)
	}
	if r.End, err = parseTime(end); err != nil {
		return wire.FlowRecord{}, fmt.Errorf("flow %s/%s: %w", r.Connector, r.ID, err)
	}
	return r, nil
}

// addrPortText is how an address and port are stored: their canonical
// text, or "" for none.
func addrPortText(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("stored address %q: %w", s, err)
	}
	return ap, nil
}

// clampInt64 fits a byte count into SQLite's signed integers.
func clampInt64(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}
