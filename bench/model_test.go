package bench

import (
	"cmp"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
)

// benchRows returns n feature rows of the benchmark request's eligible
// candidates at 1,000 campaigns (repeated to fill n), as the bidder builds
// them.
func benchRows(b *testing.B, n int) []float32 {
	snap, err := campaigns.Compile(GenerateCampaigns(1000), campaigns.WithSeat(Seat))
	if err != nil {
		b.Fatal(err)
	}
	var p ortb.Parser
	var req ortb.Request
	if err := p.Parse(SiteBanner("0.5"), &req); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	cands := snap.Match(nil, &req, &req.Imps[0], now, &campaigns.Scratch{})
	if len(cands) == 0 {
		b.Fatal("no candidates")
	}
	base := make([]float32, features.Width)
	features.ExtractImp(base, &req, &req.Imps[0], now, personalize(&req))
	rows := make([]float32, 0, n*features.Width)
	for i := range n {
		cr := cands[i%len(cands)].Creative
		var w, h int
		if len(cr.Sizes) > 0 {
			w, h = int(cr.Sizes[0].W), int(cr.Sizes[0].H)
		}
		ad := features.NewAd(cr.Campaign.ID, cr.ID, cr.Campaign.Advertiser, cr.MType(), w, h)
		rows = features.AppendRow(rows, base, &ad)
	}
	return rows
}

// benchScore measures one Score call of n rows; ns/row is the cost per
// scored candidate.
func benchScore(b *testing.B, s ctr.Scorer, n int) {
	rows := benchRows(b, n)
	out := make([]float32, n)
	if err := s.Score(time.Time{}, rows, out); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(rows) * 4))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Score(time.Time{}, rows, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}

// BenchmarkGBDTRow is the bundled 200-tree depth-6 GBDT (leaves, through
// ctr.GBDT.Score, which uses the non-allocating Ensemble.Predict) per row,
// at the batch sizes the bid path produces: 1 and 8 candidates.
func BenchmarkGBDTRow(b *testing.B) {
	g := loadGBDT(b)
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchScore(b, g, n) })
	}
}

// ortLibrary is libonnxruntime, as `make onnxruntime` installs it.
func ortLibrary() string {
	return cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
}

// BenchmarkONNXRow is the bundled MLP on ONNX Runtime's CPU provider: one
// session run of n rows directly, and through the micro-batcher with a
// single caller (the batcher's overhead without any gathering). Skipped
// without lib/onnxruntime.
func BenchmarkONNXRow(b *testing.B) {
	lib := ortLibrary()
	if _, err := os.Stat(lib); err != nil {
		b.Skipf("no ONNX Runtime at %s (make onnxruntime)", lib)
	}
	x, err := ctr.LoadONNX("../configs/models/mlp.manifest.json", ctr.ONNXOptions{
		LibraryPath: lib, Provider: ctr.ProviderCPU, SchemaVersion: features.SchemaVersion, Width: features.Width, MaxBatch: 256,
	})
	if err != nil {
		b.Skipf("ONNX model not loadable here: %v", err)
	}
	defer x.Close()
	for _, n := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("direct/batch=%d", n), func(b *testing.B) { benchScore(b, x, n) })
	}
	bt, err := ctr.NewBatcher(x, ctr.BatchOptions{MaxBatch: 256})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("batcher/batch=%d", n), func(b *testing.B) { benchScore(b, bt, n) })
	}
}
