package coordclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

func newNodeClient(t *testing.T, url, pin, cred string) *coordclient.NodeClient {
	t.Helper()
	n, err := coordclient.NewNodeClient(url, pin, cred)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func flowRecord(id, user, dst, decision string, ago time.Duration) wire.FlowRecord {
	start := time.Now().Add(-ago).UTC().Truncate(time.Microsecond)
	return wire.FlowRecord{
		ID: id, User: user, Node: "laptop",
		Src:   netip.MustParseAddrPort("100.96.0.2:40000"),
		Dst:   netip.MustParseAddrPort(dst),
		Proto: wire.ProtoTCP, Decision: decision, Reason: "test",
		Start: start, End: start.Add(time.Second), BytesUp: 100, BytesDown: 2000,
	}
}

func recordIDs(recs []wire.FlowRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func codeOf(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func TestNodeClientReportFlows(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{})
	ctx := context.Background()
	office := s.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 31: 0x42})
	laptop := s.Enroll(t, wire.RoleClient, "laptop", wire.Key{2, 31: 0x42})
	n := newNodeClient(t, s.URL, s.Pin, office.Credential)

	batch := []wire.FlowRecord{
		flowRecord("a", "alice@example.com", "192.168.0.10:22", wire.DecisionAllow, 2*time.Minute),
		flowRecord("b", "alice@example.com", "192.168.0.10:8080", wire.DecisionDeny, time.Minute),
	}
	for range 2 { // a batch sent again is stored once
		if err := n.ReportFlows(ctx, batch); err != nil {
			t.Fatalf("ReportFlows: %v", err)
		}
	}
	if err := n.ReportFlows(ctx, nil); err != nil {
		t.Errorf("ReportFlows(nil) = %v, want nil", err)
	}
	got, err := s.Coord.Flows(ctx, coord.FlowQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.FlowRecord{batch[1], batch[0]}
	for i := range want {
		want[i].Connector = "office"
	}
	if diff := cmp.Diff(want, got, cmpNet, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}

	// Refusals the shipper branches on.
	tooMany := make([]wire.FlowRecord, wire.MaxFlowReport+1)
	if err := n.ReportFlows(ctx, tooMany); err == nil || !strings.Contains(err.Error(), "at most 1000") {
		t.Errorf("ReportFlows(1001 records) = %v, want a local refusal", err)
	}
	bad := flowRecord("c", "alice@example.com", "192.168.0.10:22", "perhaps", 0)
	if err := n.ReportFlows(ctx, []wire.FlowRecord{bad}); codeOf(err) != wire.CodeInvalid {
		t.Errorf("ReportFlows(invalid record) = %v, want code %s", err, wire.CodeInvalid)
	}
	asClient := newNodeClient(t, s.URL, s.Pin, laptop.Credential)
	if err := asClient.ReportFlows(ctx, batch); codeOf(err) != wire.CodeUnauthorized {
		t.Errorf("ReportFlows as a client = %v, want code %s", err, wire.CodeUnauthorized)
	}
	wrongPin := newNodeClient(t, s.URL, strings.Repeat("ab", 32), office.Credential)
	var pe *coordclient.PinError
	if err := wrongPin.ReportFlows(ctx, batch); !errors.As(err, &pe) {
		t.Errorf("ReportFlows with the wrong pin = %v, want a *PinError", err)
	}
	if err := s.Coord.RemoveNode(ctx, "office"); err != nil {
		t.Fatal(err)
	}
	if err := n.ReportFlows(ctx, batch); codeOf(err) != wire.CodeUnauthorized {
		t.Errorf("ReportFlows after the connector was removed = %v, want code %s", err, wire.CodeUnauthorized)
	}
}

func TestNewNodeClientRefuses(t *testing.T) {
	pin := strings.Repeat("ab", 32)
	for _, tt := range []struct{ url, pin, cred, want string }{
		{"ftp://example.com", pin, "c", "https"},
		{"https://198.51.100.1:8443", "abc", "c", "certificate pin is not a SHA-256 in hex"},
		{"https://198.51.100.1:8443", pin, "", "node credential is missing"},
	} {
		_, err := coordclient.NewNodeClient(tt.url, tt.pin, tt.cred)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewNodeClient(%q, %q, %q) = %v, want an error holding %q", tt.url, tt.pin, tt.cred, err, tt.want)
		}
	}
}

func TestAdminFlows(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{})
	ctx := context.Background()
	office := s.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 31: 0x42})
	recs := []wire.FlowRecord{
		flowRecord("ssh", "alice@example.com", "192.168.0.10:22", wire.DecisionAllow, 3*time.Hour),
		flowRecord("web", "alice@example.com", "192.168.0.10:8080", wire.DecisionDeny, 2*time.Hour),
		flowRecord("dns", "bob@example.com", "10.0.0.53:53", wire.DecisionAllow, 30*time.Minute),
		flowRecord("v6", "bob@example.com", "[2001:db8::10]:443", wire.DecisionDeny, 10*time.Minute),
	}
	if err := newNodeClient(t, s.URL, s.Pin, office.Credential).ReportFlows(ctx, recs); err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, s.Admin)
	tests := []struct {
		q    coordclient.FlowQuery
		want []string
	}{
		{coordclient.FlowQuery{}, []string{"v6", "dns", "web", "ssh"}},
		{coordclient.FlowQuery{User: "alice@example.com"}, []string{"web", "ssh"}},
		{coordclient.FlowQuery{Dest: netip.MustParsePrefix("192.168.0.0/16")}, []string{"web", "ssh"}},
		{coordclient.FlowQuery{Dest: netip.MustParsePrefix("2001:db8::10/128")}, []string{"v6"}},
		{coordclient.FlowQuery{Since: time.Hour}, []string{"v6", "dns"}},
		{coordclient.FlowQuery{DeniedOnly: true}, []string{"v6", "web"}},
		{coordclient.FlowQuery{Limit: 3}, []string{"v6", "dns", "web"}},
		{coordclient.FlowQuery{User: "bob@example.com", Since: time.Hour, DeniedOnly: true, Dest: netip.MustParsePrefix("2001:db8::/32"), Limit: 10}, []string{"v6"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.q), func(t *testing.T) {
			got, err := a.Flows(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, recordIDs(got)); diff != "" {
				t.Errorf("Flows (-want +got):\n%s", diff)
			}
		})
	}
	_, err := a.Flows(ctx, coordclient.FlowQuery{Limit: 20000})
	if codeOf(err) != wire.CodeInvalid || err.Error() != "limit \"20000\" is not a number from 1 to 10000" {
		t.Errorf("Flows(limit 20000) = %v, want the coordinator's one-line refusal", err)
	}
}
