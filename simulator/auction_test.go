package simulator

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestRunAuction(t *testing.T) {
	f := func(name string, in AuctionInput, want AuctionResult) {
		t.Helper()
		got := RunAuction(in)
		got.Clearing = math.Round(got.Clearing*1e6) / 1e6
		if got != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	f("second price pays runner-up plus a cent", AuctionInput{OurBid: 2, Floor: 0.5, Others: []float64{1.2, 0.8}},
		AuctionResult{Won: true, Clearing: 1.21})
	f("second price alone pays the floor plus a cent", AuctionInput{OurBid: 2, Floor: 0.5},
		AuctionResult{Won: true, Clearing: 0.51})
	f("second price never above own bid", AuctionInput{OurBid: 1.205, Floor: 0.5, Others: []float64{1.2}},
		AuctionResult{Won: true, Clearing: 1.205})
	f("competitors below floor ignored", AuctionInput{OurBid: 1, Floor: 0.9, Others: []float64{0.89}},
		AuctionResult{Won: true, Clearing: 0.91})
	f("first price pays own bid", AuctionInput{OurBid: 2, Floor: 0.5, Others: []float64{1.2}, FirstPrice: true},
		AuctionResult{Won: true, Clearing: 2})
	f("below floor", AuctionInput{OurBid: 0.4, Floor: 0.5, Others: []float64{0.7}, FirstPrice: true},
		AuctionResult{Clearing: 0.7, LossReason: LossBelowAuctionFloor})
	f("below deal floor", AuctionInput{OurBid: 0.4, Floor: 0.5, DealBid: true},
		AuctionResult{LossReason: LossBelowDealFloor})
	f("lost to higher bid, second price", AuctionInput{OurBid: 1, Floor: 0.5, Others: []float64{3, 0.2}},
		AuctionResult{Clearing: 1.01, LossReason: LossLostToHigherBid})
	f("tie goes to the competitor", AuctionInput{OurBid: 1, Others: []float64{1}, FirstPrice: true},
		AuctionResult{Clearing: 1, LossReason: LossLostToHigherBid})
}

// With K competitors bidding independent log-normals and no floor, a bid b
// wins with probability F(b)^K.
func TestWinRateMatchesBidDistribution(t *testing.T) {
	f := func(k int, bid float64, seed uint64) {
		t.Helper()
		m := Market{FixedBidders: k, Bid: LogNormal{Mu: math.Log(0.5), Sigma: 0.8}}
		r := rand.New(rand.NewPCG(seed, 9))
		const n = 100_000
		wins := 0
		var buf []float64
		for i := 0; i < n; i++ {
			buf = m.Competitors(r, 1, buf[:0])
			if RunAuction(AuctionInput{OurBid: bid, Others: buf}).Won {
				wins++
			}
		}
		p := math.Pow(m.Bid.CDF(bid), float64(k))
		sd := math.Sqrt(p * (1 - p) / n)
		if got := float64(wins) / n; math.Abs(got-p) > 4*sd {
			t.Errorf("K=%d bid=%v: win rate %.4f, want %.4f +- %.4f", k, bid, got, p, 4*sd)
		}
	}
	f(1, 0.5, 1)
	f(3, 1.0, 2)
	f(5, 2.0, 3)
}

// Second price: the mean clearing price of wins is E[max(others)] given that
// it is below our bid, plus the increment; checked against a numeric integral.
func TestSecondPriceMeanClearing(t *testing.T) {
	m := Market{FixedBidders: 2, Bid: LogNormal{Mu: 0, Sigma: 0.5}}
	const bid = 1.5
	r := rand.New(rand.NewPCG(11, 1))
	var sum float64
	wins := 0
	var buf []float64
	for i := 0; i < 200_000; i++ {
		buf = m.Competitors(r, 1, buf[:0])
		res := RunAuction(AuctionInput{OurBid: bid, Others: buf})
		if res.Won {
			sum += res.Clearing
			wins++
		}
	}
	// Density of the max of 2 is 2 F f; integrate x * 2 F(x) f(x) on (0, bid).
	num, den := 0.0, 0.0
	const steps = 20000
	for i := 1; i <= steps; i++ {
		x := bid * (float64(i) - 0.5) / steps
		fx := math.Exp(-math.Log(x)*math.Log(x)/(2*0.25)) / (x * 0.5 * math.Sqrt(2*math.Pi))
		w := 2 * m.Bid.CDF(x) * fx * bid / steps
		num, den = num+x*w, den+w
	}
	want := num/den + 0.01
	if got := sum / float64(wins); math.Abs(got-want) > 0.01 {
		t.Errorf("mean second-price clearing %.4f, want %.4f", got, want)
	}
}
