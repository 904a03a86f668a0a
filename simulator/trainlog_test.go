package simulator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

func trainLog(t *testing.T, cfg TrainLogConfig) ([]byte, TrainLogResult) {
	t.Helper()
	cfg.Dir = t.TempDir()
	res, err := WriteTrainLog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, "impressions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return b, res
}

func trainLogConfig(n int64, workers int) TrainLogConfig {
	return TrainLogConfig{
		Sim: Config{Seed: 5, Rate: 1000, TimeScale: 8.64, SimStart: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
			Truth: GroundTruth{Base: 0.05, Seed: 3}},
		Sink:     SinkConfig{Price: 50, Campaigns: 4, Creatives: 3},
		Requests: n, Workers: workers,
	}
}

func TestTrainLogDeterministic(t *testing.T) {
	a, ra := trainLog(t, trainLogConfig(3000, 1))
	b, rb := trainLog(t, trainLogConfig(3000, 3))
	if !bytes.Equal(a, b) || ra != rb {
		t.Fatalf("1 and 3 workers differ: %d vs %d bytes, %+v vs %+v", len(a), len(b), ra, rb)
	}
	if _, err := WriteTrainLog(TrainLogConfig{Dir: t.TempDir()}); !errors.Is(err, ErrTrainLogRequests) {
		t.Errorf("no request count: %v", err)
	}
	// A log of requests 1000..3000 (Skip) is the rest of the 3000-request log
	// after the lines of its first 1000 requests.
	first := trainLogConfig(1000, 2)
	head, rh := trainLog(t, first)
	rest := trainLogConfig(3000, 2)
	rest.Skip = 1000
	tail, rt := trainLog(t, rest)
	if !bytes.Equal(append(head, tail...), a) || rh.Rendered+rt.Rendered != ra.Rendered || rt.Requests != 2000 {
		t.Errorf("skip: %d + %d bytes (%+v, %+v) is not the whole log's %d", len(head), len(tail), rh, rt, len(a))
	}
	bad := trainLogConfig(10, 1)
	bad.Skip = 10
	if _, err := WriteTrainLog(bad); !errors.Is(err, ErrTrainLogRequests) {
		t.Errorf("skip = requests: %v", err)
	}
}

// Each line is what a run against the sink logs: the generated request (the
// same traffic as simulator run for the seed), the sink's rotating bid, and
// a label drawn from the ground truth of exactly that impression.
func TestTrainLogLines(t *testing.T) {
	cfg := trainLogConfig(20000, 0)
	b, res := trainLog(t, cfg)
	src := NewGenSource(cfg.Sim.mustDefaults(t))
	reqs := map[string]*Outgoing{}
	bidNo := map[string]int64{} // request id + "/" + imp id -> sink bid counter
	var n int64
	for i := int64(0); i < cfg.Requests; i++ {
		og, _, _ := src.Next()
		reqs[og.Req.ID] = og
		for _, imp := range og.Req.Imp {
			n++
			bidNo[og.Req.ID+"/"+imp.ID] = n
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var rows, clicks int64
	var truth float64
	formats, camps := map[string]int{}, map[string]int{}
	for sc.Scan() {
		var row LogRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		og := reqs[row.RequestID]
		if og == nil {
			t.Fatalf("line for an unknown request %s", row.RequestID)
		}
		if !bytes.Equal(row.Request, og.Body) || row.TS != og.SimTime || row.Version != og.Version {
			t.Fatalf("%s: logged request/ts/version differ from the generated one", row.RequestID)
		}
		var req openrtb2.BidRequest
		if err := json.Unmarshal(row.Request, &req); err != nil {
			t.Fatal(err)
		}
		imp := &req.Imp[impIndex(&req, row.ImpID)]
		k := bidNo[row.RequestID+"/"+row.ImpID]
		wantCID := "camp-" + strconv.FormatInt(1+k%4, 10)
		wantCrID := wantCID + "-cr-" + strconv.FormatInt(1+(k/4)%3, 10)
		if row.CID != wantCID || row.CrID != wantCrID {
			t.Fatalf("%s/%s: ad %s %s, the sink's bid %d is %s %s", row.RequestID, row.ImpID, row.CID, row.CrID, k, wantCID, wantCrID)
		}
		bid := openrtb2.Bid{CID: row.CID, CrID: row.CrID}
		if imp.Banner != nil && imp.Video == nil && imp.Native == nil {
			bid.W, bid.H = imp.Banner.Format[0].W, imp.Banner.Format[0].H
		}
		ctx := ContextFor(&req, imp, row.TS, &bid)
		if p := cfg.Sim.Truth.CTR(ctx); p != row.Eval.TrueCTR || row.Format != ctx.Format || row.Eval.LocalHour != ctx.LocalHour {
			t.Fatalf("%s: true_ctr %v format %s hour %d, the ground truth of the line says %v %s %d",
				row.RequestID, row.Eval.TrueCTR, row.Format, row.Eval.LocalHour, p, ctx.Format, ctx.LocalHour)
		}
		if row.Clearing <= 0 || row.Clearing > row.BidPrice || row.BidPrice != 50 {
			t.Fatalf("%s: bid %v clearing %v", row.RequestID, row.BidPrice, row.Clearing)
		}
		rows++
		clicks += int64(row.Click)
		truth += row.Eval.TrueCTR
		formats[row.Format]++
		camps[row.CID]++
	}
	if rows != res.Rendered || clicks != res.Clicks || res.Requests != cfg.Requests {
		t.Fatalf("lines %d clicks %d, result %+v", rows, clicks, res)
	}
	// 90% of won imps render; the sink at 50 USD CPM wins nearly every one.
	if r := float64(res.Rendered) / float64(res.Won); math.Abs(r-0.9) > 4*math.Sqrt(0.09/float64(res.Won)) {
		t.Errorf("rendered %d of %d won", res.Rendered, res.Won)
	}
	if res.Won < res.Imps*98/100 || res.Imps < res.Requests {
		t.Errorf("won %d of %d imps (%d requests)", res.Won, res.Imps, res.Requests)
	}
	p := truth / float64(rows)
	if got, sd := float64(clicks)/float64(rows), math.Sqrt(p*(1-p)/float64(rows)); math.Abs(got-p) > 4*sd {
		t.Errorf("click rate %.4f, mean true CTR %.4f (+- %.4f)", got, p, 4*sd)
	}
	if len(formats) != 3 || len(camps) != 4 {
		t.Errorf("formats %v campaigns %v", formats, camps)
	}
	// -sim-span: the simulated clock covers about Requests / Rate x TimeScale.
	span := float64(res.SimEnd - res.SimStart)
	if want := float64(cfg.Requests) / cfg.Sim.Rate * cfg.Sim.TimeScale; math.Abs(span-want) > 0.05*want {
		t.Errorf("simulated span %v s, want about %v", span, want)
	}
}

func (c Config) mustDefaults(t *testing.T) Config {
	t.Helper()
	c.Targets = []string{"http://127.0.0.1/"}
	c, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
