package simulator

import (
	"math"
	"math/rand/v2"
)

// OpenRTB loss reason codes (OpenRTB 2.5 section 5.25 / openrtb3.LossReason).
const (
	LossWon               = 0
	LossBelowAuctionFloor = 100
	LossBelowDealFloor    = 101
	LossLostToHigherBid   = 102
)

// Market describes the competing bidders of one auction: their number is
// Poisson(MeanBidders) (exactly FixedBidders when that is > 0) and each bids
// an independent log-normal CPM in USD, multiplied by the imp's format
// multiplier (video 3x, as its floors).
type Market struct {
	MeanBidders  float64
	FixedBidders int
	Bid          LogNormal
}

// DefaultMarket: about 4 competitors with a median bid of 2.00 USD CPM
// (the highest of 4 has a median near 4.5).
var DefaultMarket = Market{MeanBidders: 4, Bid: LogNormal{Mu: math.Log(2), Sigma: 0.8}}

// Competitors draws the competing bids for one imp, appending to dst.
func (m Market) Competitors(r *rand.Rand, mult float64, dst []float64) []float64 {
	n := m.FixedBidders
	if n <= 0 {
		n = Poisson(r, m.MeanBidders)
	}
	for i := 0; i < n; i++ {
		dst = append(dst, m.Bid.Draw(r)*mult)
	}
	return dst
}

// AuctionInput is one imp's auction from our bidder's point of view. Prices
// are CPM in USD.
type AuctionInput struct {
	OurBid      float64   // 0 = no bid
	Floor       float64   // imp.bidfloor (or the deal's floor for a deal bid)
	DealBid     bool      // our bid names a deal of this imp; Floor is the deal floor
	Others      []float64 // competing bids
	FirstPrice  bool
	MinIncrease float64 // second price increment, default 0.01
}

// AuctionResult is the outcome for our bid.
type AuctionResult struct {
	Won        bool
	Clearing   float64 // what the winner pays (CPM USD); for a loss, the winner's price (0 if nobody won)
	LossReason int
}

// RunAuction decides the imp. Competing bids below the floor are ignored; our
// bid must reach the floor (reason 100, or 101 for a deal floor). The highest
// bid wins (ties go to the competitor). First price: the winner pays its bid.
// Second price: the winner pays max(floor, second highest valid bid) plus
// MinIncrease, never more than its own bid.
func RunAuction(in AuctionInput) AuctionResult {
	inc := in.MinIncrease
	if inc == 0 {
		inc = 0.01
	}
	best, second := 0.0, 0.0
	for _, b := range in.Others {
		if b < in.Floor {
			continue
		}
		if b > best {
			best, second = b, best
		} else if b > second {
			second = b
		}
	}
	price := func(win, runnerUp float64) float64 {
		if in.FirstPrice {
			return win
		}
		p := math.Max(in.Floor, runnerUp)
		if runnerUp > 0 || in.Floor > 0 {
			p += inc
		}
		return math.Min(p, win)
	}
	otherPrice := 0.0
	if best > 0 {
		otherPrice = price(best, math.Max(second, in.OurBid*boolF(in.OurBid >= in.Floor)))
	}
	if in.OurBid <= 0 {
		return AuctionResult{Clearing: otherPrice, LossReason: LossLostToHigherBid}
	}
	if in.OurBid < in.Floor {
		reason := LossBelowAuctionFloor
		if in.DealBid {
			reason = LossBelowDealFloor
		}
		return AuctionResult{Clearing: otherPrice, LossReason: reason}
	}
	if best >= in.OurBid {
		return AuctionResult{Clearing: otherPrice, LossReason: LossLostToHigherBid}
	}
	return AuctionResult{Won: true, Clearing: price(in.OurBid, best), LossReason: LossWon}
}

// MinToWin is the lowest bid that would have won the imp: the floor, or a
// MinIncrease (default a cent) above the best valid competing bid, since
// ties go to the competitor. It is what an exchange substitutes for
// ${AUCTION_MIN_TO_WIN} in win and loss notices.
func MinToWin(in AuctionInput) float64 {
	inc := in.MinIncrease
	if inc == 0 {
		inc = 0.01
	}
	best := 0.0
	for _, b := range in.Others {
		if b >= in.Floor && b > best {
			best = b
		}
	}
	m := in.Floor
	if best > 0 {
		m = max(m, best+inc)
	}
	if m <= 0 {
		m = inc
	}
	return m
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
