package simulator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// LogRow is one line of the training log (DIR/impressions.jsonl): one
// rendered impression with what an exchange and ad server know, and the
// click label. Eval holds the ground-truth probability: for evaluation only,
// never a feature.
type LogRow struct {
	TS        int64           `json:"ts"` // simulated unix seconds when the request was sent
	RequestID string          `json:"request_id"`
	Version   string          `json:"version"` // x-openrtb-version
	Request   json.RawMessage `json:"request"` // the bid request as sent (uncompressed)
	ImpID     string          `json:"imp_id"`
	CID       string          `json:"cid"`
	CrID      string          `json:"crid"`
	ADomain   []string        `json:"adomain,omitempty"`
	Format    string          `json:"format"` // banner, video, native
	W         int64           `json:"w,omitempty"`
	H         int64           `json:"h,omitempty"`
	BidPrice  float64         `json:"bid_price"`      // CPM, bid currency
	Clearing  float64         `json:"clearing_price"` // CPM, bid currency
	Currency  string          `json:"cur"`
	PCTR      *float64        `json:"pctr,omitempty"` // the bidder's prediction (bid.ext.pctr)
	Click     int             `json:"click"`          // label: 1 clicked, 0 not
	Eval      LogEval         `json:"eval"`
}

// LogEval is kept apart for evaluation only.
type LogEval struct {
	TrueCTR   float64 `json:"true_ctr"`
	LocalHour int     `json:"local_hour"`
}

type logWriter struct {
	f     *os.File
	bw    *bufio.Writer
	ch    chan []byte
	done  sync.WaitGroup
	stats *Stats
}

func newLogWriter(dir string, st *Stats) (*logWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("simulator: log dir: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "impressions.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("simulator: log file: %w", err)
	}
	w := &logWriter{f: f, bw: bufio.NewWriterSize(f, 1<<20), ch: make(chan []byte, 1<<14), stats: st}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for line := range w.ch {
			w.bw.Write(line)
		}
	}()
	return w, nil
}

func (w *logWriter) write(og *Outgoing, imp *openrtb2.Imp, b *openrtb2.Bid, clearing float64, ev bidEvent, c ImpContext) {
	row := LogRow{TS: og.SimTime, RequestID: og.Req.ID, Version: og.Version, Request: og.Body, ImpID: imp.ID,
		CID: b.CID, CrID: b.CrID, ADomain: b.ADomain, Format: c.Format, W: c.W, H: c.H, BidPrice: b.Price,
		Clearing: clearing, Currency: ev.cur, Eval: LogEval{TrueCTR: ev.truth, LocalHour: c.LocalHour}}
	if ev.hasPCTR {
		p := ev.pctr
		row.PCTR = &p
	}
	if ev.clicked {
		row.Click = 1
	}
	line, err := json.Marshal(row)
	if err != nil {
		return
	}
	line = append(line, '\n')
	select {
	case w.ch <- line:
		w.stats.add(func(c *Counters) { c.LogRows++ })
	default:
		w.stats.add(func(c *Counters) { c.LogDropped++ })
	}
}

func (w *logWriter) close() {
	close(w.ch)
	w.done.Wait()
	w.bw.Flush()
	w.f.Close()
}
