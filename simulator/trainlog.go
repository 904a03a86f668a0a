package simulator

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// TrainLogConfig configures WriteTrainLog.
type TrainLogConfig struct {
	// Sim supplies the traffic (Seed, Rate, TimeScale, SimStart, Diurnal,
	// PeakHour, Traffic), the market, RenderProb and the ground truth, as for
	// a run. Targets, notices and timing fields are not used.
	Sim Config
	// Sink is the bidder that answers every request: its Price, Campaigns and
	// Creatives (BidProb, Addr and Delay are not used).
	Sink     SinkConfig
	Requests int64 // requests to generate (> 0)
	// Skip generates the first Skip requests without logging them (the bid
	// counter advances as if they were answered), so a second log with
	// Requests N+M and Skip N continues a first one of N requests: the two
	// hold disjoint requests of one run, for growing training data without
	// rewriting what exists. TimeScale must then be the same in both.
	Skip    int64
	Dir     string // DIR/impressions.jsonl, the format of Config.LogDir
	Workers int    // goroutines building log lines (default GOMAXPROCS); the bytes do not depend on it
}

// TrainLogResult counts what WriteTrainLog did.
type TrainLogResult struct {
	Requests, Imps, Won, Rendered, Clicks int64
	MeanTrueCTR                           float64 // over rendered impressions
	SimStart, SimEnd                      int64   // simulated unix seconds of the first and last request
}

// ErrTrainLogRequests is returned for a TrainLogConfig without Requests.
var ErrTrainLogRequests = errors.New("simulator: trainlog needs a request count > 0 and 0 <= skip < count")

// WriteTrainLog writes the training log of a run against a sink that bids on
// every imp, without HTTP: the same generated traffic as `simulator run`
// (NewGenSource: requests and simulated times are the same for the same
// seed), the sink's bids (sinkBid: campaigns and creatives rotate over a bid
// counter, here in request order), each imp's auction against the market,
// then render and click draws from the ground truth. One line per rendered
// impression, as a run with -log writes against the sink; no request times
// out and no notice is sent, so nothing is lost to the machine's load and
// the file is the same bytes for the same configuration.
//
// It exists because a live run is bounded by what one machine can send and
// answer over loopback (about 2,500 requests/s here); the models need tens of
// millions of impressions.
func WriteTrainLog(cfg TrainLogConfig) (TrainLogResult, error) {
	var res TrainLogResult
	if cfg.Requests <= 0 || cfg.Skip < 0 || cfg.Skip >= cfg.Requests {
		return res, ErrTrainLogRequests
	}
	sim := cfg.Sim
	sim.Targets = []string{"http://127.0.0.1/"} // not contacted; withDefaults wants one
	sim, err := sim.withDefaults()
	if err != nil {
		return res, err
	}
	sink := cfg.Sink.withDefaults()
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return res, fmt.Errorf("simulator: trainlog dir: %w", err)
	}
	f, err := os.Create(filepath.Join(cfg.Dir, "impressions.jsonl"))
	if err != nil {
		return res, fmt.Errorf("simulator: trainlog file: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	// The source is sequential (one rng for the traffic); the auctions and
	// the JSON of each batch run on the workers, and batches are written in
	// order.
	const batch = 256
	type job struct {
		ogs   []*Outgoing
		first int64 // bid counter of the batch's first imp
		out   []byte
		res   TrainLogResult
		done  chan struct{}
	}
	jobs := make(chan *job, workers)
	order := make(chan *job, 4*workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				n := j.first
				for _, og := range j.ogs {
					j.out, n = trainLogRequest(j.out, og, n, sim, sink, &j.res)
				}
				close(j.done)
			}
		}()
	}
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for j := range order {
			<-j.done
			if err == nil {
				_, err = bw.Write(j.out)
			}
			res.add(j.res)
		}
		writeErr <- err
	}()
	src := NewGenSource(sim)
	var bids int64
	for i := int64(0); i < cfg.Skip; i++ {
		og, _, _ := src.Next()
		bids += int64(len(og.Req.Imp))
	}
	for done := cfg.Skip; done < cfg.Requests; {
		j := &job{first: bids, done: make(chan struct{})}
		for ; len(j.ogs) < batch && done < cfg.Requests; done++ {
			og, _, _ := src.Next()
			if done == cfg.Skip {
				res.SimStart = og.SimTime
			}
			res.SimEnd = og.SimTime
			j.ogs = append(j.ogs, og)
			bids += int64(len(og.Req.Imp))
		}
		order <- j
		jobs <- j
	}
	close(jobs)
	close(order)
	wg.Wait()
	err = <-writeErr
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if res.Rendered > 0 {
		res.MeanTrueCTR /= float64(res.Rendered)
	}
	if err != nil {
		return res, fmt.Errorf("simulator: trainlog: %w", err)
	}
	return res, nil
}

func (r *TrainLogResult) add(o TrainLogResult) {
	r.Requests += o.Requests
	r.Imps += o.Imps
	r.Won += o.Won
	r.Rendered += o.Rendered
	r.Clicks += o.Clicks
	r.MeanTrueCTR += o.MeanTrueCTR // a sum until WriteTrainLog divides
}

// trainLogRequest appends the log lines of og's rendered impressions to dst.
// n is the sink's bid counter before og; the rng is per request (its own
// stream, not the live run's per-imp draws), so a line depends on its
// request alone.
func trainLogRequest(dst []byte, og *Outgoing, n int64, sim Config, sink SinkConfig, res *TrainLogResult) ([]byte, int64) {
	rng := rand.New(rand.NewPCG(sim.Seed^0x51a7e, og.Seq))
	res.Requests++
	var others []float64
	for ii := range og.Req.Imp {
		imp := &og.Req.Imp[ii]
		n++
		res.Imps++
		b := sinkBid(sink, n, imp, "127.0.0.1")
		mult := 1.0
		if imp.Video != nil {
			mult = 3
		}
		others = sim.Market.Competitors(rng, mult, others[:0])
		a := RunAuction(AuctionInput{OurBid: b.Price, Floor: ToUSD(imp.BidFloor, orUSD(imp.BidFloorCur)),
			Others: others, FirstPrice: og.Req.AT == 1})
		if !a.Won {
			continue
		}
		res.Won++
		if rng.Float64() >= sim.RenderProb {
			continue
		}
		res.Rendered++
		ctx := ContextFor(og.Req, imp, og.SimTime, &b)
		truth := sim.Truth.CTR(ctx)
		res.MeanTrueCTR += truth
		row := LogRow{TS: og.SimTime, RequestID: og.Req.ID, Version: og.Version, Request: og.Body, ImpID: imp.ID,
			CID: b.CID, CrID: b.CrID, ADomain: b.ADomain, Format: ctx.Format, W: ctx.W, H: ctx.H, BidPrice: b.Price,
			Clearing: math.Round(a.Clearing*1e6) / 1e6, Currency: "USD", Eval: LogEval{TrueCTR: truth, LocalHour: ctx.LocalHour}}
		if p, ok := pctrOf(&b); ok {
			row.PCTR = &p
		}
		if rng.Float64() < truth {
			row.Click = 1
			res.Clicks++
		}
		line, err := json.Marshal(row)
		if err != nil {
			continue // openrtb2 requests and log rows always marshal
		}
		dst = append(append(dst, line...), '\n')
	}
	return dst, n
}
