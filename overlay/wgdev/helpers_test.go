package wgdev

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"sync"
	"testing"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/wire"
)

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, cond)
}

// checkNoLeaks waits until no goroutine runs wireguard-go code (wgdev
// starts none of its own), and fails the test if some remain.
func checkNoLeaks(t *testing.T) { t.Helper(); testutil.NoLeaks(t, "golang.zx2c4.com/wireguard/") }

// testKey is a fixed key: 32 bytes of b.
func testKey(b byte) wire.Key {
	var k wire.Key
	for i := range k {
		k[i] = b
	}
	return k
}

// newKey returns a random private key.
func newKey(t *testing.T) wire.Key {
	t.Helper()
	var k wire.Key
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

// testLogger returns a logger that keeps everything at debug level and
// shows it only if the test fails. It outlives the test safely, unlike
// t.Log.
func testLogger(t *testing.T) *slog.Logger {
	buf := new(syncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
