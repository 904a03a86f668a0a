package bidder

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// The event log writes each byte of an id that is not part of valid UTF-8
// as \udcXX, the byte Python's "surrogateescape" reads back; valid ids as
// encoding/json writes them.
func TestEventIDEscapesBytesNotUTF8(t *testing.T) {
	f := func(id, want string) {
		t.Helper()
		got, err := json.Marshal(eventID(id))
		if err != nil || string(got) != want {
			t.Errorf("eventID(%q) = %s, %v; want %s", id, got, err, want)
		}
	}
	f("a-1", `"a-1"`)
	f("é<\"\\\u2028", `"é\u003c\"\\\u2028"`)
	f("\uFFFD", "\"\uFFFD\"")
	f("a\xff", `"a\udcff"`)
	f("a\xfe", `"a\udcfe"`)
	f("\xe2\x82x", `"\udce2\udc82x"`)         // a 3-byte sequence cut short: one bad run, two bytes
	f("\xed\xa0\x80", `"\udced\udca0\udc80"`) // an encoded surrogate is not UTF-8
	f("é\xc3<\xf0\x9f\x98", `"é\udcc3\u003c\udcf0\udc9f\udc98"`)
}

// A bid whose auction id is not UTF-8 is a training row: ctr/train/rowlog.py
// joins its row log record with its impression and click in the event log,
// and keeps ids that differ only in their bad bytes apart. Runs where
// /usr/bin/python3 has numpy.
func TestRowLogJoinsIdsNotUTF8(t *testing.T) {
	py := pythonWithNumpy(t)
	dir := t.TempDir()
	cfg := rowLogTestConfig(dir)
	rl, err := newRowLogQueue(cfg, features.Width, features.SchemaVersion, func(ctr.Scored) string { return "m" }, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"ok-1", "a\xff", "a\xfe", "\xe2\x82x", "\xe2\x82", "\xed\xa0\x80", "é\xc3", "a\ufffd"}
	for _, id := range ids {
		rowLogOffer(t, rl, 1, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := rl.start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	rl.wait()
	_, _, recs, _ := readRowLog(t, cfg.Path)
	if len(recs) != len(ids) {
		t.Fatalf("%d records, want %d", len(recs), len(ids))
	}
	imp, campaign, creative := []byte(recs[0].Imp), []byte(recs[0].Campaign), []byte(recs[0].Creative)

	// Every id shown but "a\xfe" (it must not borrow "a\xff"'s impression);
	// clicks on two of them.
	events := filepath.Join(dir, "events.jsonl")
	ef, err := os.Create(events)
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Uint64
	w := newEventWriter(ef, slog.Default(), &failed)
	at := time.Unix(1_800_000_000, 0).Add(time.Hour)
	var want []string
	for _, id := range ids {
		if id == "a\xfe" {
			continue
		}
		want = append(want, hex.EncodeToString([]byte(id)))
		w.write(event{Kind: "imp", Time: at, Token: &bidToken{AuctionID: []byte(id), ImpID: imp, Campaign: campaign, Creative: creative}})
	}
	for _, id := range []string{"a\xff", "\xe2\x82x"} {
		w.write(event{Kind: "click", Time: at, Token: &bidToken{AuctionID: []byte(id), ImpID: imp, Campaign: campaign, Creative: creative}})
	}
	w.flush()
	ef.Close()

	const script = `import json, sys
sys.path.insert(0, "../ctr/train")
import rowlog
log = rowlog.read_logs(sys.argv[1])
shown, clicked, last = rowlog.read_events(sys.argv[2])
d = rowlog.join(log, shown, clicked, last, 0)
print(json.dumps({"keys": [k[0].encode("utf-8", "surrogateescape").hex() for k in d["key"]],
                  "clicks": [k[0].encode("utf-8", "surrogateescape").hex() for k, y in zip(d["key"], d["y"]) if y]}))
`
	out, err := exec.Command(py, "-c", script, cfg.Path, events).Output()
	if err != nil {
		t.Fatalf("rowlog.py: %v %s", err, out)
	}
	var got struct{ Keys, Clicks []string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	slices.Sort(got.Keys)
	slices.Sort(got.Clicks)
	slices.Sort(want)
	wantClicks := []string{hex.EncodeToString([]byte("\xe2\x82x")), hex.EncodeToString([]byte("a\xff"))}
	slices.Sort(wantClicks)
	if !slices.Equal(got.Keys, want) || !slices.Equal(got.Clicks, wantClicks) {
		t.Errorf("joined rows (hex auction ids)\n%v clicks %v\nwant\n%v clicks %v", got.Keys, got.Clicks, want, wantClicks)
	}
}
