package flowlog

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/warrennet/warren/overlay/wire"
)

// The spool on disk.
//
// The spool is a directory of segment files named by a sequence number
// ("0000000000000042.jsonl"), each holding one JSON-encoded record per
// line. Records are appended to the newest segment, the open one, which
// is sealed (closed for good) when it is full or when the writer hands it
// to the shipper; a new one is opened for the next records. Sealed
// segments never change: the shipper reads them and deletes each once the
// Sink has all its records, and the bound deletes the oldest one not
// being shipped when the spool holds too many records.
//
// A crash can tear only the last line of the segment open at the time:
// at start every segment found is sealed, and records go to a new one.
// Reading skips a line without its newline, and any line that does not
// decode (counted in skipped).

// segmentExt ends every segment file's name.
const segmentExt = ".jsonl"

// segment is one segment file.
type segment struct {
	seq      uint64
	count    int  // records in the file
	sealed   bool // no more records go in
	shipping bool // the shipper is sending its records
	// skipCounted: its torn or corrupt lines are in spool.skipped
	// already, so reading it again (to ship, or to retry) counts none.
	skipCounted bool
}

func (s *segment) name() string { return fmt.Sprintf("%016d%s", s.seq, segmentExt) }

// spool is the segment files of one directory. Its writing methods
// (append, seal, closeOpen) are the writer goroutine's alone; take,
// release, remove and the counters are safe from any goroutine.
type spool struct {
	dir    string
	max    int // records kept at most
	segMax int // records per segment at most

	// The open segment and its file, the writer's alone.
	f       *os.File
	open    *segment
	nextSeq uint64

	// mu guards the fields below. No I/O is done while it is held.
	mu      sync.Mutex
	segs    []*segment // oldest first; the last may be the open one
	total   int        // records in segs
	dropped uint64     // records deleted by the bound
	skipped uint64     // torn or corrupt lines skipped
}

// openSpool opens (creating it 0700) the spool directory dir, holding at
// most maxRecords records in segments of at most segMax. Every segment already
// there is sealed; empty ones are deleted.
func openSpool(dir string, maxRecords, segMax int) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the flow spool: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the flow spool: %w", err)
	}
	sp := &spool{dir: dir, max: maxRecords, segMax: segMax, nextSeq: 1}
	for _, e := range entries {
		seq, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		seg := &segment{seq: seq, sealed: true, skipCounted: true}
		recs, skipped, err := sp.readFile(seg)
		if err != nil {
			return nil, err
		}
		sp.skipped += uint64(skipped)
		if len(recs) == 0 {
			if err := os.Remove(sp.path(seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("removing an empty flow spool segment: %w", err)
			}
			continue
		}
		seg.count = len(recs)
		sp.segs = append(sp.segs, seg)
		sp.total += seg.count
		sp.nextSeq = max(sp.nextSeq, seq+1)
	}
	slices.SortFunc(sp.segs, func(a, b *segment) int { return cmp.Compare(a.seq, b.seq) })
	return sp, nil
}

func parseSegmentName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(base) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 10, 64)
	return seq, err == nil
}

func (sp *spool) path(seg *segment) string { return filepath.Join(sp.dir, seg.name()) }

// append writes recs to the open segment (opening one, and sealing and
// opening more when it fills), then fsyncs. It returns the records
// written and the first error; the bound is enforced after.
func (sp *spool) append(recs []wire.FlowRecord) (int, error) {
	var buf bytes.Buffer
	written := 0
	for len(recs) > 0 {
		if sp.open == nil {
			if err := sp.openSegment(); err != nil {
				return written, err
			}
		}
		n := min(len(recs), sp.segMax-sp.open.count)
		buf.Reset()
		for _, r := range recs[:n] {
			b, err := json.Marshal(r)
			if err != nil {
				return written, fmt.Errorf("encoding a flow record: %w", err)
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
		if _, err := sp.f.Write(buf.Bytes()); err != nil {
			return written, fmt.Errorf("writing the flow spool: %w", err)
		}
		if err := sp.f.Sync(); err != nil {
			return written, fmt.Errorf("syncing the flow spool: %w", err)
		}
		sp.mu.Lock()
		sp.open.count += n
		sp.total += n
		full := sp.open.count >= sp.segMax
		sp.mu.Unlock()
		written += n
		recs = recs[n:]
		if full {
			sp.seal()
		}
	}
	sp.enforceBound()
	return written, nil
}

// openSegment creates the next segment file and makes it the open one.
func (sp *spool) openSegment() error {
	seg := &segment{seq: sp.nextSeq}
	f, err := os.OpenFile(sp.path(seg), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating a flow spool segment: %w", err)
	}
	if err := syncDir(sp.dir); err != nil {
		f.Close()
		os.Remove(sp.path(seg))
		return err
	}
	sp.nextSeq++
	sp.f, sp.open = f, seg
	sp.mu.Lock()
	sp.segs = append(sp.segs, seg)
	sp.mu.Unlock()
	return nil
}

// seal closes the open segment, if any, and hands it to the shipper.
func (sp *spool) seal() {
	if sp.open == nil {
		return
	}
	sp.f.Close() // every record in it is synced already
	sp.mu.Lock()
	sp.open.sealed = true
	sp.mu.Unlock()
	sp.f, sp.open = nil, nil
}

// openCount is the number of records in the open segment.
func (sp *spool) openCount() int {
	if sp.open == nil {
		return 0
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.open.count
}

// enforceBound deletes the oldest sealed segments not being shipped until
// the spool holds at most max records (or only segments it may not
// delete).
func (sp *spool) enforceBound() {
	var victims []*segment
	sp.mu.Lock()
	for i := 0; sp.total > sp.max && i < len(sp.segs); {
		seg := sp.segs[i]
		if !seg.sealed || seg.shipping {
			i++
			continue
		}
		sp.segs = slices.Delete(sp.segs, i, i+1)
		sp.total -= seg.count
		sp.dropped += uint64(seg.count)
		victims = append(victims, seg)
	}
	sp.mu.Unlock()
	for _, seg := range victims {
		os.Remove(sp.path(seg))
	}
}

// pending reports whether a sealed segment waits for the shipper.
func (sp *spool) pending() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, seg := range sp.segs {
		if seg.sealed {
			return true
		}
	}
	return false
}

// take marks for shipping, and returns, the oldest sealed segments that
// together hold at most limit records (at least one segment if any is
// sealed and not already being shipped).
func (sp *spool) take(limit int) []*segment {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var out []*segment
	n := 0
	for _, seg := range sp.segs {
		if !seg.sealed || seg.shipping {
			break
		}
		if len(out) > 0 && n+seg.count > limit {
			break
		}
		seg.shipping = true
		out = append(out, seg)
		n += seg.count
	}
	return out
}

// release hands segs back after a failed send.
func (sp *spool) release(segs []*segment) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, seg := range segs {
		seg.shipping = false
	}
}

// remove deletes segs, whose records the Sink has taken.
func (sp *spool) remove(segs []*segment) {
	sp.mu.Lock()
	for _, seg := range segs {
		if i := slices.Index(sp.segs, seg); i >= 0 {
			sp.segs = slices.Delete(sp.segs, i, i+1)
			sp.total -= seg.count
		}
	}
	sp.mu.Unlock()
	for _, seg := range segs {
		os.Remove(sp.path(seg))
	}
}

// read returns the records of segs, in order, skipping torn and corrupt
// lines.
func (sp *spool) read(segs []*segment) ([]wire.FlowRecord, error) {
	var out []wire.FlowRecord
	for _, seg := range segs {
		recs, skipped, err := sp.readFile(seg)
		if err != nil {
			return nil, err
		}
		sp.mu.Lock()
		if !seg.skipCounted {
			sp.skipped += uint64(skipped)
			seg.skipCounted = true
		}
		sp.mu.Unlock()
		out = append(out, recs...)
	}
	return out, nil
}

// readFile reads one segment's records and counts the lines it skipped.
func (sp *spool) readFile(seg *segment) ([]wire.FlowRecord, int, error) {
	f, err := os.Open(sp.path(seg))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the flow spool: %w", err)
	}
	defer f.Close()
	var (
		recs    []wire.FlowRecord
		skipped int
	)
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				skipped++ // torn: the crash came before its newline
			}
			return recs, skipped, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading the flow spool: %w", err)
		}
		var rec wire.FlowRecord
		if err := json.Unmarshal(line, &rec); err != nil || rec.ID == "" {
			skipped++
			continue
		}
		recs = append(recs, rec)
	}
}

// counts returns the records held, dropped by the bound and skipped.
func (sp *spool) counts() (total int, dropped, skipped uint64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.total, sp.dropped, sp.skipped
}

// syncDir fsyncs a directory, so that a file created in it survives a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the flow spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing the flow spool: %w", err)
	}
	return nil
}
