package bidder

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// syncBuffer is a log destination written by many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every part logs through the logger the app is given (its level and
// format): the app's own lines, the model holders (ctr) and the budget
// manager. Impressions go to the configured event log path.
func TestAppLogsThroughItsLoggerAndWritesEvents(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	events := filepath.Join(t.TempDir(), "ev", "events.jsonl")
	app := startAppLog(t, func(c *Config) {
		c.Model.Provider = "off" // GBDT alone: the test needs no ONNX Runtime
		c.Events = EventsConfig{Path: events, MaxSizeMB: 1, MaxBackups: 2}
	}, log)
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	code, resp, why := postBid(t, "http://"+app.Addr()+"/openrtb2/bid", body)
	if code != 200 {
		t.Fatalf("bid: %d %s", code, why)
	}
	var br openrtb2.BidResponse
	if err := json.Unmarshal(resp, &br); err != nil {
		t.Fatal(err)
	}
	b := br.SeatBid[0].Bid[0]
	base := "http://" + app.Addr()
	pixel := base + "/notice/imp" + between(b.AdM, `<img src="`+base+"/notice/imp", `"`)
	if code, _ := get(t, pixel); code != 200 {
		t.Fatalf("pixel: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}

	msgs := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line struct{ Msg string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON log line: %q", sc.Text())
		}
		msgs[line.Msg] = true
	}
	for _, want := range []string{"ctr: model loaded", "bidder listening", "budget closed"} {
		if !msgs[want] {
			t.Errorf("no %q in the app's log:\n%s", want, logs.String())
		}
	}
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"kind":"imp"`) || !strings.Contains(string(data), `"campaign":"acme-banner"`) {
		t.Errorf("event log %s lacks the impression:\n%s", events, data)
	}
}
