package bidder

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// rowRec is one decoded row log record.
type rowRec struct {
	Time                                    int64
	PCTR                                    float32
	Auction, Imp, Campaign, Creative, Model string
	Row                                     []float32
}

// readRowLog decodes a row log file as a reader should: the header, then
// records until the end or the first torn or corrupt one.
func readRowLog(t *testing.T, path string) (width int, schema string, recs []rowRec, torn bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 9 || string(b[:4]) != rowLogMagic || binary.LittleEndian.Uint16(b[4:]) != rowLogVersion {
		t.Fatalf("%s: bad header % x", path, b[:min(len(b), 16)])
	}
	width = int(binary.LittleEndian.Uint16(b[6:]))
	n := int(b[8])
	schema = string(b[9 : 9+n])
	b = b[9+n:]
	for len(b) > 0 {
		if len(b) < 4 {
			return width, schema, recs, true
		}
		l := int(binary.LittleEndian.Uint32(b))
		if len(b) < 4+l+4 || crc32.ChecksumIEEE(b[4:4+l]) != binary.LittleEndian.Uint32(b[4+l:]) {
			return width, schema, recs, true
		}
		body := b[4 : 4+l]
		b = b[4+l+4:]
		r := rowRec{Time: int64(binary.LittleEndian.Uint64(body)), PCTR: math.Float32frombits(binary.LittleEndian.Uint32(body[8:]))}
		body = body[12:]
		for _, s := range []*string{&r.Auction, &r.Imp, &r.Campaign, &r.Creative, &r.Model} {
			k := int(body[0])
			*s, body = string(body[1:1+k]), body[1+k:]
		}
		if len(body) != 4*width {
			t.Fatalf("record row of %d bytes, want %d", len(body), 4*width)
		}
		for i := 0; i < width; i++ {
			r.Row = append(r.Row, math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])))
		}
		recs = append(recs, r)
	}
	return width, schema, recs, false
}

// rowLogScorer records the rows it scores and answers a fixed pCTR.
type rowLogScorer struct {
	fixedScorer
	rows []float32
}

func (r *rowLogScorer) Score(deadline time.Time, rows, out []float32) error {
	r.rows = append(r.rows[:0], rows...)
	return r.fixedScorer.Score(deadline, rows, out)
}

func rowLogTestConfig(dir string) RowLogConfig {
	return RowLogConfig{Path: filepath.Join(dir, "rows.bin"), Sample: 1, MaxBytes: 64 << 20, Backups: 3, Queue: 64}
}

// A bid's record holds the bid's keys, the served pCTR, the model's name and
// the very row the scorer saw; the file reads back after the writer stops.
func TestRowLogRoundTrip(t *testing.T) {
	ts := newTestServer(t, nil)
	sc := &rowLogScorer{fixedScorer: fixedScorer{p: 0.0375}}
	ts.SetScorer(sc)
	cfg := rowLogTestConfig(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	rl, err := newRowLog(ctx, cfg, features.Width, features.SchemaVersion, func(ctr.Scored) string { return "model-a" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts.mon.rows = rl
	before := time.Now()
	if r := ts.bidInTime(readReq(t, "site-banner.json")); r.StatusCode() != 200 {
		t.Fatalf("status %d: %s", r.StatusCode(), r.Body())
	}
	cancel()
	rl.wait()
	width, schema, recs, torn := readRowLog(t, cfg.Path)
	if width != features.Width || schema != features.SchemaVersion || torn || len(recs) != 1 {
		t.Fatalf("width %d schema %q torn %v records %d", width, schema, torn, len(recs))
	}
	r := recs[0]
	if r.Auction != "req-site-banner" || r.Imp != "1" || r.Campaign == "" || r.Creative == "" || r.Model != "model-a" || r.PCTR != 0.0375 {
		t.Fatalf("record %+v", r)
	}
	if at := time.Unix(0, r.Time); at.Before(before.Add(-time.Second)) || at.After(time.Now()) {
		t.Fatalf("time %v", at)
	}
	// The scorer saw one row per candidate; the bid's row is one of them.
	found := false
	for i := 0; (i+1)*features.Width <= len(sc.rows); i++ {
		found = found || slices.Equal(sc.rows[i*features.Width:(i+1)*features.Width], r.Row)
	}
	if !found {
		t.Fatalf("logged row %v is not a scored row", r.Row)
	}
	if rl.written.Load() != 1 || rl.dropped.Load() != 0 || rl.offered.Load() != 1 {
		t.Fatalf("written %d dropped %d offered %d", rl.written.Load(), rl.dropped.Load(), rl.offered.Load())
	}
}

// offerN offers n one-bid requests with distinct arrival times.
func rowLogOffer(t *testing.T, rl *rowLog, n int, auction string) {
	t.Helper()
	ts := newTestServer(t, nil)
	bc := ts.getBidCtx()
	defer ts.putBidCtx(bc)
	if err := bc.parser.Parse(readReq(t, "site-banner.json"), &bc.req); err != nil {
		t.Fatal(err)
	}
	bc.req.ID = []byte(auction)
	cat := ts.catalog.Load()
	bc.slots = append(bc.slots, slot{imp: 0, cand: catCandidate(t, cat)})
	bc.rows = make([]float32, features.Width)
	bc.pctr = append(bc.pctr, 0.01)
	bc.best = append(bc.best, choice{slot: 0})
	base := time.Unix(1_800_000_000, 0)
	for i := 0; i < n; i++ {
		bc.rows[0] = float32(i)
		bc.now = base.Add(time.Duration(i) * 7919 * time.Nanosecond)
		rl.offer(bc)
	}
}

// catCandidate is a candidate of the test catalog's first campaign.
func catCandidate(t *testing.T, cat *catalog) (c campaigns.Candidate) {
	t.Helper()
	snap := cat.snap
	if len(snap.Campaigns) == 0 || len(snap.Campaigns[0].Creatives) == 0 {
		t.Fatal("no campaign with a creative in testdata/campaigns")
	}
	c.Campaign = snap.Campaigns[0]
	c.Creative = snap.Campaigns[0].Creatives[0]
	return c
}

// Sampling keeps about the configured share of bids, decided per bid.
func TestRowLogSampling(t *testing.T) {
	for _, share := range []float64{1, 0.25, 0.01} {
		cfg := rowLogTestConfig(t.TempDir())
		cfg.Sample, cfg.Queue = share, 20000
		rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, nil, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		const n = 20000
		rowLogOffer(t, rl, n, "a")
		got := float64(rl.offered.Load()) / n
		if math.Abs(got-share) > 4*math.Sqrt(share*(1-share)/n)+1e-9 {
			t.Errorf("sample %v: %.4f of bids offered", share, got)
		}
		if rl.dropped.Load() != 0 || int(rl.offered.Load()) != len(rl.work) {
			t.Errorf("sample %v: dropped %d, offered %d, queued %d", share, rl.dropped.Load(), rl.offered.Load(), len(rl.work))
		}
	}
}

// A full queue drops records and counts them; the bid is never held up, and
// what was queued is written once the writer runs.
func TestRowLogDropsWhenFull(t *testing.T) {
	cfg := rowLogTestConfig(t.TempDir())
	cfg.Queue = 3
	rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, func(ctr.Scored) string { return "m" }, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	rowLogOffer(t, rl, 10, "full") // no writer yet: 3 queued, 7 dropped
	if rl.offered.Load() != 10 || rl.dropped.Load() != 7 {
		t.Fatalf("offered %d dropped %d, want 10 and 7", rl.offered.Load(), rl.dropped.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := rl.start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	rl.wait()
	_, _, recs, torn := readRowLog(t, cfg.Path)
	if torn || len(recs) != 3 || rl.written.Load() != 3 {
		t.Fatalf("torn %v, %d records, written %d", torn, len(recs), rl.written.Load())
	}
	for i, r := range recs {
		if r.Row[0] != float32(i) || r.Auction != "full" {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}

// Files rotate before a record would pass max_bytes; at most backups old
// files are kept, each a readable file with its header; the newest records
// are in the current file and none is lost while the backups hold them.
func TestRowLogRotation(t *testing.T) {
	for _, c := range []struct{ n, backups int }{{50, 10}, {200, 2}} {
		dir := t.TempDir()
		cfg := rowLogTestConfig(dir)
		cfg.Backups, cfg.Queue = c.backups, c.n
		rec := rowLogRecordSize(t)
		cfg.MaxBytes = int64(len(rowLogHeaderFor(cfg)) + 10*rec) // 10 records a file
		rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, nil, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		rowLogOffer(t, rl, c.n, "rot")
		ctx, cancel := context.WithCancel(context.Background())
		if err := rl.start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		rl.wait()
		files := []string{cfg.Path}
		for k := 1; ; k++ {
			p := cfg.Path + "." + strconv.Itoa(k)
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				break
			}
			files = append(files, p)
		}
		wantFiles := min(c.n/10, c.backups+1)
		if len(files) != wantFiles || int(rl.rotations.Load()) != c.n/10-1 {
			t.Fatalf("n %d backups %d: files %v, rotations %d", c.n, c.backups, files, rl.rotations.Load())
		}
		var all []rowRec
		for i := len(files) - 1; i >= 0; i-- { // oldest first
			_, _, recs, torn := readRowLog(t, files[i])
			if torn || len(recs) != 10 {
				t.Fatalf("%s: torn %v, %d records", files[i], torn, len(recs))
			}
			if fi, _ := os.Stat(files[i]); fi.Size() > cfg.MaxBytes {
				t.Fatalf("%s: %d bytes, above max %d", files[i], fi.Size(), cfg.MaxBytes)
			}
			all = append(all, recs...)
		}
		first := c.n - len(all) // the oldest kept record
		for i, r := range all {
			if r.Row[0] != float32(first+i) {
				t.Fatalf("record %d holds row %v, want %d", i, r.Row[0], first+i)
			}
		}
	}
}

func rowLogHeaderFor(cfg RowLogConfig) []byte {
	l := &rowLog{cfg: cfg, width: features.Width, schema: features.SchemaVersion}
	return l.header()
}

// rowLogRecordSize is the size of rowLogOffer's records, with their CRC.
func rowLogRecordSize(t *testing.T) int {
	l := &rowLog{width: features.Width}
	return len(l.appendRecord(nil, time.Unix(0, 0), 0, []byte("rot"), []byte("1"), campaignOf(t), creativeOf(t), ctr.ScoredNone, make([]float32, features.Width), false, false)) + 4
}

func campaignOf(t *testing.T) string {
	c := catCandidate(t, newTestServer(t, nil).catalog.Load())
	return c.Campaign.ID
}

func creativeOf(t *testing.T) string {
	c := catCandidate(t, newTestServer(t, nil).catalog.Load())
	return c.Creative.ID
}

// A torn last record (a crash mid-write) ends the file for a reader; what
// came before reads back.
func TestRowLogTornTail(t *testing.T) {
	cfg := rowLogTestConfig(t.TempDir())
	rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	rowLogOffer(t, rl, 4, "torn")
	ctx, cancel := context.WithCancel(context.Background())
	if err := rl.start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	rl.wait()
	b, _ := os.ReadFile(cfg.Path)
	os.WriteFile(cfg.Path, b[:len(b)-9], 0o644)
	_, _, recs, torn := readRowLog(t, cfg.Path)
	if !torn || len(recs) != 3 {
		t.Fatalf("torn %v, %d records, want true and 3", torn, len(recs))
	}
}

// The Python reader of ctr/train (rowlog.py) decodes what the bidder
// writes: the same records, field for field.
func TestRowLogPythonReader(t *testing.T) {
	py := pythonWithNumpy(t)
	cfg := rowLogTestConfig(t.TempDir())
	rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, func(ctr.Scored) string { return "mlp-x" }, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	rowLogOffer(t, rl, 5, "py-auction")
	ctx, cancel := context.WithCancel(context.Background())
	if err := rl.start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	rl.wait()
	_, _, want, _ := readRowLog(t, cfg.Path)
	out, err := exec.Command(py, "../ctr/train/rowlog.py", "--dump", cfg.Path).Output()
	if err != nil {
		t.Fatalf("rowlog.py: %v", err)
	}
	var got []rowRec
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var r rowRec
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("python read\n%+v\nwant\n%+v", got, want)
	}
}

// pythonWithNumpy is the interpreter ctr/train's scripts run with
// (/usr/bin/python3); the test is skipped where it or its numpy is missing
// (CI installs neither).
func pythonWithNumpy(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("python3 without numpy")
	}
	return py
}

// A bid whose privacy decision allows personalisation but not training (GDPR,
// no TCF purpose 10 basis) is logged with its user-level slots as 0 and
// every other slot as scored (an outside privacy audit: purposes 1-4 only,
// and the row kept the user bucket, age and gender); so are the geo slots
// when user.geo stood in for device.geo (a later audit: the user's home
// country, region and local time were kept).
func TestRowLogNoTrainZeroesUserSlots(t *testing.T) {
	// The home location's slots, as a request without geo writes them: no
	// country or region (0), hour and weekday unknown (-1, not midnight on
	// a Sunday).
	homeGeo := map[int]float32{features.SlotCountry: 0, features.SlotRegion: 0, features.SlotHour: -1, features.SlotDayOfWeek: -1}
	for _, c := range []struct{ noTrain, geoFromUser bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		noTrain := c.noTrain
		cfg := rowLogTestConfig(t.TempDir())
		ctx, cancel := context.WithCancel(context.Background())
		rl, err := newRowLog(ctx, cfg, features.Width, features.SchemaVersion, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ts := newTestServer(t, nil)
		bc := ts.getBidCtx()
		if err := bc.parser.Parse(readReq(t, "site-banner.json"), &bc.req); err != nil {
			t.Fatal(err)
		}
		bc.slots = append(bc.slots, slot{imp: 0, cand: catCandidate(t, ts.catalog.Load())})
		bc.rows = make([]float32, features.Width)
		for i := range bc.rows {
			bc.rows[i] = float32(i + 1)
		}
		bc.pctr = append(bc.pctr, 0.01)
		bc.best = append(bc.best, choice{slot: 0})
		bc.now = time.Unix(1_800_000_000, 0)
		bc.priv.NoTrain = noTrain
		bc.req.Device.GeoFromUser = c.geoFromUser
		rl.offer(bc)
		ts.putBidCtx(bc)
		cancel()
		rl.wait()
		_, _, recs, _ := readRowLog(t, cfg.Path)
		if len(recs) != 1 {
			t.Fatalf("no train %v: %d records", noTrain, len(recs))
		}
		users := 0
		for i, v := range recs[0].Row {
			user := i < len(features.Slots) && features.Slots[i].User
			if user {
				users++
			}
			home, isHome := homeGeo[i]
			if want := float32(i + 1); user && noTrain {
				if v != 0 {
					t.Errorf("no train (geo from user %v): user-level slot %d logged %v, want 0", c.geoFromUser, i, v)
				}
			} else if isHome && c.geoFromUser && noTrain {
				if v != home {
					t.Errorf("no train, geo from user: home location slot %d logged %v, want %v", i, v, home)
				}
			} else if v != want {
				t.Errorf("no train %v: slot %d logged %v, want %v", noTrain, i, v, want)
			}
		}
		if users == 0 {
			t.Fatal("the schema has no user-level slot: the test checks nothing")
		}
	}
}

// predictingFixed is a fixedScorer a Chain takes as its primary.
type predictingFixed struct{ fixedScorer }

func (predictingFixed) PredictLatency(int) time.Duration { return 0 }

// A record names the model that scored its row: the fallback's when the
// chain fell to it. The model in front of the chain was named, and under
// load most rows of an outside audit's closed loop named the ONNX model
// while the GBDT had scored them (their pCTR matched the GBDT's bit for
// bit).
func TestRowLogNamesTheModelThatScored(t *testing.T) {
	ts := newTestServer(t, nil)
	primary := &predictingFixed{fixedScorer{p: 0.05, err: ctr.ErrQueueFull}}
	chain, err := ctr.NewChain(primary, &fixedScorer{p: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	ts.SetScorer(chain)
	cfg := rowLogTestConfig(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	names := map[ctr.Scored]string{ctr.ScoredPrimary: "onnx-a", ctr.ScoredFallback: "gbdt-b"}
	rl, err := newRowLog(ctx, cfg, features.Width, features.SchemaVersion, func(by ctr.Scored) string { return names[by] }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts.mon.rows = rl
	if r := ts.bidInTime(readReq(t, "site-banner.json")); r.StatusCode() != 200 {
		t.Fatalf("status %d: %s", r.StatusCode(), r.Body())
	}
	primary.err = nil
	if r := ts.bidInTime(readReq(t, "site-banner.json")); r.StatusCode() != 200 {
		t.Fatalf("status %d: %s", r.StatusCode(), r.Body())
	}
	cancel()
	rl.wait()
	_, _, recs, _ := readRowLog(t, cfg.Path)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if recs[0].Model != "gbdt-b" || recs[0].PCTR != 0.02 || recs[1].Model != "onnx-a" || recs[1].PCTR != 0.05 {
		t.Fatalf("records: %s %v, %s %v; want gbdt-b 0.02 (the primary failed), onnx-a 0.05", recs[0].Model, recs[0].PCTR, recs[1].Model, recs[1].PCTR)
	}
}

// A file is readied before records are appended to it: a torn last record
// (a crash mid-write) is cut, else every record written after the restart
// stayed hidden behind it until the file rotated; a file of another format
// is moved aside, else the new records went under a header that does not
// describe them (an outside audit). The file is the owner's only: its rows
// are personal data.
func TestRowLogReopensTornAndOtherFiles(t *testing.T) {
	write := func(cfg RowLogConfig, n int, auction string) {
		t.Helper()
		rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, nil, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		rowLogOffer(t, rl, n, auction)
		ctx, cancel := context.WithCancel(context.Background())
		if err := rl.start(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		rl.wait()
	}
	cfg := rowLogTestConfig(t.TempDir())
	write(cfg, 4, "before")
	b, _ := os.ReadFile(cfg.Path)
	os.WriteFile(cfg.Path, b[:len(b)-9], 0o600) // the crash
	write(cfg, 3, "after")
	_, _, recs, torn := readRowLog(t, cfg.Path)
	if torn || len(recs) != 6 || recs[5].Auction != "after" {
		t.Fatalf("after a torn tail: torn %v, %d records, want false and 6 (3 before the tear, 3 after)", torn, len(recs))
	}
	if fi, err := os.Stat(cfg.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	// A zero-filled tail (a power loss): not records of length 0.
	b, _ = os.ReadFile(cfg.Path)
	os.WriteFile(cfg.Path, append(b, make([]byte, 4096)...), 0o600)
	write(cfg, 1, "zeros")
	_, _, recs, torn = readRowLog(t, cfg.Path)
	if torn || len(recs) != 7 || recs[6].Auction != "zeros" {
		t.Fatalf("after a zero-filled tail: torn %v, %d records, want false and 7", torn, len(recs))
	}

	// A bad record in the middle, whole ones after it: the file rotates
	// whole (readers still find it and report the tear), it is not cut
	// (the whole records after the bad one were lost: a recheck).
	cfg = rowLogTestConfig(t.TempDir())
	write(cfg, 6, "mid")
	b, _ = os.ReadFile(cfg.Path)
	bad := append([]byte(nil), b...)
	bad[len(rowLogHeaderFor(cfg))+rowLogRecordSize(t)+20] ^= 0xff // inside the second record
	os.WriteFile(cfg.Path, bad, 0o600)
	write(cfg, 2, "after-mid")
	if kept, _ := os.ReadFile(cfg.Path + ".1"); !bytes.Equal(kept, bad) {
		t.Fatalf("the file with a bad record mid-way was not rotated whole (%d bytes at .1, want %d)", len(kept), len(bad))
	}
	_, _, recs, torn = readRowLog(t, cfg.Path)
	if torn || len(recs) != 2 || recs[0].Auction != "after-mid" {
		t.Fatalf("after a bad record mid-way: torn %v, %d records, want a new file of 2", torn, len(recs))
	}

	// Another schema's header (an older bidder's file).
	cfg = rowLogTestConfig(t.TempDir())
	old := append([]byte("OBRL\x01\x00\x29\x00\x02v1"), 0, 0, 0, 0)
	os.WriteFile(cfg.Path, old, 0o600)
	write(cfg, 2, "new")
	_, schema, recs, torn := readRowLog(t, cfg.Path)
	if schema != features.SchemaVersion || torn || len(recs) != 2 {
		t.Fatalf("after another format's file: schema %q torn %v, %d records", schema, torn, len(recs))
	}
	aside, _ := filepath.Glob(cfg.Path + ".other-*")
	if len(aside) != 1 {
		t.Fatalf("the other format's file was not moved aside: %v", aside)
	}
	if got, _ := os.ReadFile(aside[0]); !bytes.Equal(got, old) {
		t.Fatalf("moved aside: %q, want the old file", got)
	}
}
