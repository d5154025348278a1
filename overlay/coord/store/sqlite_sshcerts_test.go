package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func sshRecord(user string, at time.Duration) func(uint64) (wire.SSHCertRecord, error) {
	return func(uint64) (wire.SSHCertRecord, error) {
		issued := t0.Add(at)
		return wire.SSHCertRecord{
			User: user, Node: "laptop", Principals: []string{"alice", "deploy"},
			KeyFingerprint: "SHA256:key", CAFingerprint: "SHA256:ca",
			IssuedAt: issued, ValidAfter: issued.Add(-5 * time.Minute), ValidBefore: issued.Add(time.Hour),
		}, nil
	}
}

func TestSSHCertsSerialsAndLog(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	v0 := mustLoad(t, s).Version
	var got []uint64
	var seen []uint64
	for i, user := range []string{"alice@example.com", "bob@example.com", "alice@example.com"} {
		rec, err := s.IssueSSHCert(ctx, func(serial uint64) (wire.SSHCertRecord, error) {
			seen = append(seen, serial)
			return sshRecord(user, time.Duration(i)*time.Minute)(serial)
		})
		if err != nil {
			t.Fatalf("IssueSSHCert: %v", err)
		}
		got = append(got, rec.Serial)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, got); diff != "" {
		t.Errorf("serials (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(got, seen); diff != "" {
		t.Errorf("serials sign saw differ from those recorded (-recorded +seen):\n%s", diff)
	}
	// A failed signing stores nothing and hands its error back as is.
	boom := errors.New("boom")
	if _, err := s.IssueSSHCert(ctx, func(uint64) (wire.SSHCertRecord, error) { return wire.SSHCertRecord{}, boom }); err != boom {
		t.Errorf("IssueSSHCert with a failing sign = %v, want it as is", err)
	}
	if v := mustLoad(t, s).Version; v != v0 {
		t.Errorf("version %d after issuing, want %d: the log is no netmap's business", v, v0)
	}

	all, err := s.SSHCerts(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := sshRecord("alice@example.com", 2*time.Minute)(3)
	want.Serial = 3
	if len(all) != 3 {
		t.Fatalf("SSHCerts = %d records, want 3", len(all))
	}
	if diff := cmp.Diff(want, all[0], cmpOpts); diff != "" {
		t.Errorf("newest record (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		user  string
		limit int
		want  []uint64
	}{
		{"", 0, []uint64{3, 2, 1}},
		{"", 2, []uint64{3, 2}},
		{"alice@example.com", 0, []uint64{3, 1}},
		{"bob@example.com", 5, []uint64{2}},
		{"carol@example.com", 0, []uint64{}},
	} {
		recs, err := s.SSHCerts(ctx, tt.user, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		serials := []uint64{}
		for _, r := range recs {
			serials = append(serials, r.Serial)
		}
		if diff := cmp.Diff(tt.want, serials); diff != "" {
			t.Errorf("SSHCerts(%q, %d) (-want +got):\n%s", tt.user, tt.limit, diff)
		}
	}

	// Serials keep growing across a restart, even after the newest row
	// is gone: one never names two certificates.
	if _, err := s.write.ExecContext(ctx, `DELETE FROM ssh_certs WHERE serial = 3`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	rec, err := s2.IssueSSHCert(ctx, sshRecord("alice@example.com", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// 4: the failed signing's serial was rolled back with it, never issued.
	if rec.Serial != 4 {
		t.Errorf("serial after deleting 3 and a restart = %d, want 4", rec.Serial)
	}
}
