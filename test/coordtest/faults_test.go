package coordtest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// TestFaultsFailNext: FailNext answers exactly the next n requests for its
// method and path, counted by Requests; others reach the coordinator.
func TestFaultsFailNext(t *testing.T) {
	f := coordtest.NewFaults()
	s := coordtest.Start(t, coordtest.Options{PlainHTTP: true, Wrap: f.Wrap})
	busy := wire.Error{Message: "busy", Code: wire.CodeUnavailable}
	f.FailNext(http.MethodGet, wire.PathHealth, 2, http.StatusServiceUnavailable, busy)

	get := func(path string) (int, wire.Error) {
		t.Helper()
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var we wire.Error
		_ = json.NewDecoder(resp.Body).Decode(&we)
		return resp.StatusCode, we
	}
	if code, _ := get(wire.PathNodes); code != http.StatusUnauthorized {
		t.Errorf("GET %s without a token = %d, want the coordinator's 401", wire.PathNodes, code)
	}
	for i := range 2 {
		if code, we := get(wire.PathHealth); code != http.StatusServiceUnavailable || we != busy {
			t.Errorf("health %d = %d %+v, want 503 %+v", i, code, we, busy)
		}
	}
	if code, _ := get(wire.PathHealth); code/100 != 2 {
		t.Errorf("health after the failures = %d, want the coordinator's answer", code)
	}
	if got := f.Requests(http.MethodGet, wire.PathHealth); got != 3 {
		t.Errorf("Requests = %d, want 3", got)
	}
}
