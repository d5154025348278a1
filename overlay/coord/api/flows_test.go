package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// flowServer is a real coordinator with a connector and a client enrolled.
type flowServer struct {
	*coordtest.Server
	hc                  *http.Client
	connector, client   string // node credentials
	connectorN, clientN wire.Node
}

func newFlowServer(t *testing.T) *flowServer {
	t.Helper()
	s := coordtest.Start(t, coordtest.Options{})
	office := s.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 31: 0x42})
	laptop := s.Enroll(t, wire.RoleClient, "laptop", wire.Key{2, 31: 0x42})
	pin := s.Pin
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the pin below replaces chain verification, as in coordclient
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != pin {
				return errors.New("certificate does not match the pin")
			}
			return nil
		},
	}}}
	t.Cleanup(hc.CloseIdleConnections)
	return &flowServer{Server: s, hc: hc, connector: office.Credential, client: laptop.Credential, connectorN: office.Node, clientN: laptop.Node}
}

// call makes one request and returns the status and the body.
func (s *flowServer) call(t *testing.T, method, path, secret string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// errorOf decodes a wire.Error body.
func errorOf(t *testing.T, body []byte) wire.Error {
	t.Helper()
	var e wire.Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q is not an error: %v", body, err)
	}
	return e
}

func testFlow(id, dst, decision string, ago time.Duration) wire.FlowRecord {
	start := time.Now().Add(-ago).UTC().Truncate(time.Millisecond)
	return wire.FlowRecord{
		ID: id, User: "alice@example.com", Node: "laptop",
		Src:   netip.MustParseAddrPort("100.96.0.2:40000"),
		Dst:   netip.MustParseAddrPort(dst),
		Proto: wire.ProtoTCP, Decision: decision, Reason: "test",
		Start: start, End: start.Add(time.Second), BytesUp: 100, BytesDown: 2000,
	}
}

func reportBody(t *testing.T, recs ...wire.FlowRecord) io.Reader {
	t.Helper()
	b, err := json.Marshal(wire.FlowReport{Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

func (s *flowServer) stored(t *testing.T) []string {
	t.Helper()
	recs, err := s.Coord.Flows(context.Background(), coord.FlowQuery{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestFlowReport(t *testing.T) {
	s := newFlowServer(t)
	rec := testFlow("f1", "192.168.0.10:22", wire.DecisionAllow, time.Minute)
	huge := `{"records":[{"id":"` + strings.Repeat("a", 5<<20) + `"}]}`
	tests := []struct {
		name       string
		secret     string
		body       io.Reader
		wantStatus int
		wantError  string // a substring of the error message
	}{
		{"no credential", "", reportBody(t, rec), http.StatusUnauthorized, "has been removed by an admin or never enrolled"},
		{"admin token", s.Admin.Secret, reportBody(t, rec), http.StatusUnauthorized, "has been removed by an admin or never enrolled"},
		{"a client", s.client, reportBody(t, rec), http.StatusUnauthorized, `only connectors report flows; "laptop" is a client`},
		{"over 4 MiB", s.connector, strings.NewReader(huge), http.StatusRequestEntityTooLarge, "flow report is larger than 4 MiB; send at most 1000 records at a time"},
		{"not JSON", s.connector, strings.NewReader("{"), http.StatusBadRequest, "bad request body"},
		{"trailing data", s.connector, strings.NewReader(`{"records":[]} {}`), http.StatusBadRequest, "trailing data"},
		{"an invalid record", s.connector, reportBody(t, rec, testFlow("", "192.168.0.10:22", wire.DecisionAllow, 0)), http.StatusBadRequest, "record 1: id must be 1 to 64 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := s.call(t, http.MethodPost, wire.PathFlowReport, tt.secret, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", status, tt.wantStatus, body)
			}
			if e := errorOf(t, body); !strings.Contains(e.Message, tt.wantError) || strings.Contains(e.Message, "\n") {
				t.Errorf("error %q, want one line holding %q", e.Message, tt.wantError)
			}
		})
	}
	if got := s.stored(t); len(got) != 0 {
		t.Fatalf("refused reports stored %v", got)
	}

	// A connector's report is stored; a newer connector's unknown fields
	// are ignored rather than refused.
	status, body := s.call(t, http.MethodPost, wire.PathFlowReport, s.connector,
		strings.NewReader(`{"records":[{"id":"f0","node":"laptop","proto":"udp","decision":"deny","reason":"x","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00Z","future_field":1}],"future":true}`))
	if status != http.StatusOK {
		t.Fatalf("report with unknown fields: status %d (%s), want 200", status, body)
	}
	if status, body := s.call(t, http.MethodPost, wire.PathFlowReport, s.connector, reportBody(t, rec)); status != http.StatusOK {
		t.Fatalf("report: status %d (%s), want 200", status, body)
	}
	if diff := cmp.Diff([]string{"f1", "f0"}, s.stored(t)); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}

func TestFlowsQueryParams(t *testing.T) {
	s := newFlowServer(t)
	recs := []wire.FlowRecord{
		testFlow("old-ssh", "192.168.0.10:22", wire.DecisionAllow, 3*time.Hour),
		testFlow("web-denied", "192.168.0.10:8080", wire.DecisionDeny, 2*time.Hour),
		testFlow("bob-dns", "10.0.0.53:53", wire.DecisionAllow, 30*time.Minute),
		testFlow("v6", "[2001:db8::10]:22", wire.DecisionAllow, 10*time.Minute),
	}
	recs[2].User = "bob@example.com"
	if err := s.Coord.ReportFlows(context.Background(), s.connectorN, recs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query     string
		want      []string
		wantError string // for a 400
	}{
		{"", []string{"v6", "bob-dns", "web-denied", "old-ssh"}, ""},
		{"user=bob@example.com", []string{"bob-dns"}, ""},
		{"dest=192.168.0.0/24", []string{"web-denied", "old-ssh"}, ""},
		{"dest=192.168.0.10", []string{"web-denied", "old-ssh"}, ""},
		{"dest=2001:db8::/64", []string{"v6"}, ""},
		{"since=1h", []string{"v6", "bob-dns"}, ""},
		{"denied=1", []string{"web-denied"}, ""},
		{"denied=true&dest=10.0.0.0/8", []string{}, ""},
		{"denied=0", []string{"v6", "bob-dns", "web-denied", "old-ssh"}, ""},
		{"limit=2", []string{"v6", "bob-dns"}, ""},
		{"user=bob", nil, `user "bob" is not an e-mail address (name@domain)`},
		{"dest=192.168.0", nil, `dest "192.168.0" is not a CIDR prefix or an IP address`},
		{"dest=192.168.0.0/33", nil, `dest "192.168.0.0/33" is not a CIDR prefix or an IP address`},
		{"since=yesterday", nil, `since "yesterday" is not a positive duration (for example 30m or 24h)`},
		{"since=-1h", nil, `since "-1h" is not a positive duration (for example 30m or 24h)`},
		{"denied=maybe", nil, `denied "maybe" is not true or false`},
		{"limit=0", nil, `limit "0" is not a number from 1 to 10000`},
		{"limit=10001", nil, `limit "10001" is not a number from 1 to 10000`},
		{"limit=many", nil, `limit "many" is not a number from 1 to 10000`},
		{"limit=1&limit=2", nil, `parameter limit is given 2 times`},
		{"usr=bob@example.com", nil, `unknown parameter "usr" (known: user, dest, since, denied, limit)`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, body := s.call(t, http.MethodGet, wire.PathFlows+"?"+tt.query, s.Admin.Secret, nil)
			if tt.wantError != "" {
				if status != http.StatusBadRequest {
					t.Errorf("status %d, want 400 (body %s)", status, body)
				}
				if got := errorOf(t, body).Message; got != tt.wantError {
					t.Errorf("error:\n got %s\nwant %s", got, tt.wantError)
				}
				return
			}
			if status != http.StatusOK {
				t.Fatalf("status %d, want 200 (body %s)", status, body)
			}
			var got []wire.FlowRecord
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, r := range got {
				ids = append(ids, r.ID)
				if r.Connector != "office" {
					t.Errorf("record %s: connector %q, want office", r.ID, r.Connector)
				}
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}

	// Only an admin may read the log.
	for _, secret := range []string{"", s.connector, s.client} {
		if status, body := s.call(t, http.MethodGet, wire.PathFlows, secret, nil); status != http.StatusUnauthorized {
			t.Errorf("GET %s with a non-admin credential: status %d (%s), want 401", wire.PathFlows, status, body)
		}
	}
}

// TestDenialReachesTheClientOverHTTP follows a denial from a connector's
// POST to the client's control stream.
func TestDenialReachesTheClientOverHTTP(t *testing.T) {
	s := newFlowServer(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, s.URL+wire.PathStream, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.client)
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var first wire.StreamMessage
	if err := dec.Decode(&first); err != nil || first.Type != wire.MsgNetMap {
		t.Fatalf("first message %+v, %v; want a netmap", first, err)
	}

	denied := testFlow("d1", "192.168.0.10:8080", wire.DecisionDeny, 0)
	if status, body := s.call(t, http.MethodPost, wire.PathFlowReport, s.connector, reportBody(t, denied)); status != http.StatusOK {
		t.Fatalf("report: status %d (%s)", status, body)
	}
	got := make(chan *wire.FlowRecord, 1)
	go func() {
		for {
			var m wire.StreamMessage
			if err := dec.Decode(&m); err != nil {
				got <- nil
				return
			}
			if m.Type == wire.MsgDenial {
				got <- m.Denial
				return
			}
		}
	}()
	select {
	case d := <-got:
		if d == nil || d.ID != "d1" || d.Connector != "office" || d.Dst != denied.Dst {
			t.Errorf("denial on the stream = %+v, want d1 from office to %v", d, denied.Dst)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no denial on the client's stream within 5s")
	}
}
