package flowtrack

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// Idle timeouts: a flow neither end has sent on for this long is
// forgotten, and its answers are dropped from then on. A TCP flow that
// has seen a FIN or a RST waits only tcpClosingTimeout (the TIME-WAIT of
// Linux's conntrack), so that short connections do not fill the table.
const (
	tcpTimeout        = 2 * time.Hour
	tcpClosingTimeout = 2 * time.Minute
	udpTimeout        = 2 * time.Minute
	icmpTimeout       = 30 * time.Second
	// fragTimeout is how long the rest of a datagram whose first
	// fragment passed may follow it (Linux's ipfrag_time).
	fragTimeout = 30 * time.Second
)

func timeout(proto uint8, closing bool) int64 {
	switch proto {
	case protoTCP:
		if closing {
			return int64(tcpClosingTimeout)
		}
		return int64(tcpTimeout)
	case protoUDP:
		return int64(udpTimeout)
	}
	return int64(icmpTimeout)
}

// numShards splits the flow table so that the reading goroutine and the
// writing ones seldom meet on one lock.
const (
	shardBits = 4
	numShards = 1 << shardBits
)

// table holds the flows the laptop opened, sharded by a hash of the key.
// Times are nanoseconds on the Device's clock.
type table struct {
	shards   [numShards]shard
	perShard int // at most this many flows in one shard
}

type shard struct {
	// mu guards m and lastFull. Entries' fields are atomics, updated under
	// the read lock.
	mu       sync.RWMutex
	m        map[flowKey]*entry
	lastFull int64 // when an insert last found the shard full and swept it
	_        [64]byte
}

// entry is one flow's state.
type entry struct {
	last    atomic.Int64 // when a packet of the flow last passed
	closing atomic.Bool  // a TCP FIN or RST was seen
}

func (e *entry) expired(proto uint8, now int64) bool {
	return now-e.last.Load() > timeout(proto, e.closing.Load())
}

func newTable(maxFlows int) *table {
	t := &table{perShard: max(maxFlows/numShards, 1)}
	for i := range t.shards {
		t.shards[i].m = make(map[flowKey]*entry)
	}
	return t
}

// shardOf picks k's shard. k and k.reverse() land in the same one only by
// chance: callers always hash the laptop-side (forward) key.
func (t *table) shardOf(k *flowKey) *shard {
	h := binary.LittleEndian.Uint32(k.src[12:]) ^ binary.LittleEndian.Uint32(k.src[:4]) ^
		binary.LittleEndian.Uint32(k.dst[12:]) ^ binary.LittleEndian.Uint32(k.dst[:4]) ^
		uint32(k.sport)<<16 ^ uint32(k.dport) ^ uint32(k.proto)
	h *= 0x9e3779b1
	return &t.shards[h>>(32-shardBits)]
}

// lookup returns the live entry for the forward key k, or nil.
func (t *table) lookup(k *flowKey, now int64) *entry {
	s := t.shardOf(k)
	s.mu.RLock()
	e := s.m[*k]
	s.mu.RUnlock()
	if e == nil || e.expired(k.proto, now) {
		return nil
	}
	return e
}

// touch records a packet of the forward flow k sent at now, adding the
// flow if it is new (or expired).
func (t *table) touch(k *flowKey, now int64, closing bool) {
	s := t.shardOf(k)
	s.mu.RLock()
	e := s.m[*k]
	s.mu.RUnlock()
	if e != nil && !e.expired(k.proto, now) {
		e.last.Store(now)
		if closing && !e.closing.Load() {
			e.closing.Store(true)
		}
		return
	}
	e = &entry{}
	e.last.Store(now)
	e.closing.Store(closing)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= t.perShard {
		t.makeRoomLocked(s, now)
	}
	s.m[*k] = e
}

// evictSample is how many entries makeRoomLocked compares to pick the
// one to evict.
const evictSample = 8

// makeRoomLocked frees a slot in the full shard s: it sweeps the shard
// (at most once a second) and, if every flow is still live, evicts the
// longest idle of a few taken at random.
func (t *table) makeRoomLocked(s *shard, now int64) {
	if now-s.lastFull >= int64(time.Second) {
		s.lastFull = now
		sweepLocked(s, now)
		if len(s.m) < t.perShard {
			return
		}
	}
	var victim flowKey
	oldest, n := int64(0), 0
	for k, e := range s.m {
		if last := e.last.Load(); n == 0 || last < oldest {
			victim, oldest = k, last
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(s.m, victim)
}

// sweep removes shard i's expired flows and returns how many it removed.
func (t *table) sweep(i int, now int64) int {
	s := &t.shards[i%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	return sweepLocked(s, now)
}

func sweepLocked(s *shard, now int64) int {
	n := 0
	for k, e := range s.m {
		if e.expired(k.proto, now) {
			delete(s.m, k)
			n++
		}
	}
	return n
}

// len counts the flows held, expired ones not yet swept included.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// maxFrags bounds the datagrams whose later fragments may pass.
const maxFrags = 1024

// frags remembers the fragmented datagrams whose first fragment passed,
// so that their other fragments (which carry no ports) may follow.
type frags struct {
	mu sync.Mutex
	m  map[fragKey]int64 // guarded by mu: when the datagram's permission ends
}

func (f *frags) allow(k *fragKey, now int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[fragKey]int64)
	}
	if _, ok := f.m[*k]; !ok && len(f.m) >= maxFrags {
		for fk, until := range f.m {
			if until < now {
				delete(f.m, fk)
			}
		}
		if len(f.m) >= maxFrags {
			return // the rest of this datagram is dropped
		}
	}
	f.m[*k] = now + int64(fragTimeout)
}

func (f *frags) allowed(k *fragKey, now int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.m[*k]
	return ok && now <= until
}
