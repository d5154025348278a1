package api

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

// TestStreamOutlivesWriteTimeout: a healthy stream must stay up across
// many write timeouts. The deadline bounds each write; left armed, HTTP/2
// resets the stream when it fires, and nodes reconnected every 10 s.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pin := wire.CertPin(srv.Certificate().Raw)
	co, err := coord.New(ctx, coord.Config{Store: st, URL: srv.URL, Pin: pin, HeartbeatInterval: 300 * time.Millisecond, HeartbeatTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := New(co, nil)
	s.writeTimeout = 100 * time.Millisecond
	srv.Config.Handler = s

	resp, err := co.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := wire.ParseToken(resp.Token)
	er, err := co.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: wire.Key{1, 31: 0x42}})
	if err != nil {
		t.Fatal(err)
	}
	var connects, drops atomic.Int64
	sess, err := coordclient.NewSession(coordclient.SessionConfig{
		URL: srv.URL, Pin: pin, Credential: er.Credential,
		HeartbeatInterval: 300 * time.Millisecond, HeartbeatTimeout: 2 * time.Second,
		Apply: func(context.Context, *wire.NetMap) error { return nil },
		OnState: func(connected bool, err error) {
			if connected {
				connects.Add(1)
			} else if err != nil {
				drops.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	// The stream is idle between pings for three write timeouts at a
	// time; watch it for several such gaps.
	time.Sleep(1500 * time.Millisecond)
	cancel()
	<-done
	if connects.Load() != 1 {
		t.Errorf("stream connected %d times in 1 s (%d drops), want once", connects.Load(), drops.Load())
	}
}
