package bidder

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/openbidder/openbidder/ortb"
)

// exchange is one exchange's rules (config exchanges.NAME) resolved at
// start: the bid path looks its request's exchange up once, from
// ?exchange=NAME (a map index by the bytes of the name: no allocation), and
// an unknown or absent name gets the defaults.
type exchange struct {
	name        []byte // exchanges.NAME; empty for the defaults (unknown names included)
	seat        []byte // buyer seat: seatbid.seat, and what wseat/bseat/deal wseat are checked against
	seatOwn     bool   // seat differs from the snapshot's (config seat)
	seatJSON    []byte // seat as a JSON string
	currency    []byte // preferred response currency; nil: USD when the request lists none
	floorCur    []byte // currency of floors without bidfloorcur (floor_currency); nil: USD
	defaultTMax time.Duration
	chargeOnWin bool
	test        testMode // what a test=1 request gets
	nbr         bool     // no-bid answers are 200 {"id":...,"nbr":N}
	pctr        bool     // bids carry ext.pctr (pricing.reveal_pctr, exchanges.NAME.pctr)
	priceArg    []byte   // &p=MACRO, JSON-escaped for the nurl/burl/lurl strings
	lossArg     []byte   // &r=MACRO, or empty when the exchange substitutes no loss reason
	minToWinArg []byte   // &m=MACRO in shading notices, or empty (macros.min_to_win: none)
	// sources are the addresses allowed to send this exchange's requests
	// (exchanges.NAME.sources, else limits.bid_sources); nil: any.
	sources []netip.Prefix
}

// testMode is what an exchange's test-mode requests (test=1) get
// (notices.test_requests, exchanges.NAME.test_requests).
type testMode uint8

const (
	testBillable testMode = iota // bid, hold and charge like a live request
	testFree                     // bid; nothing held, notices answered without charge (bidToken.Test)
	testNoBid                    // 204 test_request
)

var testModes = map[string]testMode{"billable": testBillable, "free": testFree, "nobid": testNoBid}

// Default auction macros.
const (
	macroPrice = "${AUCTION_PRICE}"
	macroLoss  = "${AUCTION_LOSS}"
	// macroMinToWin is OpenRTB 2.6's minimum bid to win, asked in the
	// shading notices of first-price bids (macros.min_to_win).
	macroMinToWin = "${AUCTION_MIN_TO_WIN}"
	macroNone     = "none" // macros.loss: the exchange substitutes no loss reason
)

// newExchanges resolves every configured exchange, and the defaults under
// the name "".
func newExchanges(cfg *Config) map[string]*exchange {
	out := make(map[string]*exchange, len(cfg.Exchanges)+1)
	out[""] = resolveExchange(cfg, ExchangeConfig{})
	for name, x := range cfg.Exchanges {
		out[name] = resolveExchange(cfg, x)
		out[name].name = []byte(name)
	}
	return out
}

func resolveExchange(cfg *Config, x ExchangeConfig) *exchange {
	ex := &exchange{seat: []byte(cfg.Seat), defaultTMax: cfg.Limits.DefaultTMax, nbr: x.NBR, pctr: cfg.Pricing.RevealPCTR}
	if x.PCTR != nil {
		ex.pctr = *x.PCTR
	}
	if x.Seat != "" && x.Seat != cfg.Seat {
		ex.seat, ex.seatOwn = []byte(x.Seat), true
	}
	ex.seatJSON = ortb.AppendJSONString(nil, ex.seat)
	if x.Currency != "" {
		ex.currency = []byte(x.Currency)
	}
	if x.FloorCurrency != "" && x.FloorCurrency != "USD" {
		ex.floorCur = []byte(x.FloorCurrency)
	}
	if x.DefaultTMax > 0 {
		ex.defaultTMax = x.DefaultTMax
	}
	on := x.ChargeOn
	if on == "" {
		on = cfg.Notices.ChargeOn
	}
	ex.chargeOnWin = on == "win"
	tm := x.TestRequests
	if tm == "" {
		tm = cfg.Notices.TestRequests
	}
	ex.test = testModes[tm] // Validate checks the name; "" (a Config not defaulted) is billable
	src := x.Sources
	if len(src) == 0 {
		src = cfg.Limits.BidSources
	}
	ex.sources, _ = parseSources(src) // Validate checks the same
	price, loss := x.Macros.Price, x.Macros.Loss
	if price == "" {
		price = macroPrice
	}
	if loss == "" {
		loss = macroLoss
	}
	ex.priceArg = jsonContent(append([]byte("&p="), price...))
	if loss != macroNone {
		ex.lossArg = jsonContent(append([]byte("&r="), loss...))
	}
	if mtw := cmp.Or(x.Macros.MinToWin, macroMinToWin); mtw != macroNone {
		ex.minToWinArg = jsonContent(append([]byte("&m="), mtw...))
	}
	return ex
}

// parseSources parses bid_sources entries: CIDR prefixes, or addresses (a
// prefix of one address). Empty gives nil (any source). An IPv4-mapped IPv6
// prefix (::ffff:192.0.2.0/120) is its IPv4 prefix, as an IPv4-mapped
// address is: peers are compared unmapped, and the mapped form matched
// nobody (an outside audit: an exchange's own notices refused).
func parseSources(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// anySource tells whether list names every address (a /0 prefix).
func anySource(list []string) bool {
	ps, _ := parseSources(list)
	for _, p := range ps {
		if p.Bits() == 0 {
			return true
		}
	}
	return false
}

// sourceAllowed says whether the request's TCP peer is in ex.sources.
func sourceAllowed(ctx *fasthttp.RequestCtx, ex *exchange) bool {
	return peerIn(ctx, ex.sources)
}

// peerIn says whether the request's TCP peer is in sources (nil: any).
func peerIn(ctx *fasthttp.RequestCtx, sources []netip.Prefix) bool {
	if sources == nil {
		return true
	}
	a, ok := netip.AddrFromSlice(ctx.RemoteIP())
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// jsonContent is b escaped as the content of a JSON string.
func jsonContent(b []byte) []byte {
	q := ortb.AppendJSONString(nil, b)
	return q[1 : len(q)-1]
}

var argExchange = []byte("exchange")

// exchangeOf is the rules of the request's exchange (?exchange=NAME).
func (s *Server) exchangeOf(ctx *fasthttp.RequestCtx) *exchange {
	return s.exchangeNamed(ctx.QueryArgs().PeekBytes(argExchange))
}

// exchangeNamed is the rules of the named exchange, the defaults for an
// unknown name.
func (s *Server) exchangeNamed(name []byte) *exchange {
	if ex, ok := s.exchanges[string(name)]; ok {
		return ex
	}
	return s.exchanges[""]
}

// nbrCodes maps each no-bid reason to an OpenRTB 2.6 no-bid reason code
// (BidResponse.nbr): 15 insufficient auction time, 1 technical error, 9
// (daily) user cap met, and 0 (unknown error, the list's catch-all) for the
// business reasons the list has no code for: no eligible campaign, below
// the floor, paced, out of budget or flight, an unconvertible currency, a
// paused campaign, a secure imp with an http public_url (insecure), and
// privacy.require_purpose2's refusal (privacy: 2.6 has no consent code).
// A repeated imp id or an id over 255 bytes is 2, invalid request (it was
// 0, as imp_refused is: a conformance audit).
var nbrCodes = [numReasons]int{
	reasonInvalidImp: 2,
	reasonTMax:       15, reasonDeadline: 15, reasonLate: 15,
	reasonNotReady: 1, reasonModelError: 1, reasonFailClosed: 1, reasonOverload: 1,
	reasonFreqCap: 9,
}

// appendNBR appends {"id":ID,"nbr":N}: a no-bid with its reason code, for
// exchanges that want one instead of a bare 204. OpenRTB 2.5's list (and
// every earlier one) ends at 10: to a request of such a version (pre26) a
// later code (15, insufficient auction time) is 0.
func appendNBR(b []byte, id []byte, r reason, old bool) []byte {
	b = append(b, `{"id":`...)
	b = ortb.AppendJSONString(b, id)
	b = append(b, `,"nbr":`...)
	code := nbrCodes[r]
	if old && code > 10 {
		code = 0
	}
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, '}')
}

// floorCurrencies names ex's floor currency (floor_currency) on every floor
// of req that names none (imp.bidfloorcur, which its video and audio
// duration floors take, and each deal's bidfloorcur), so that every reader
// of a floor converts it alike. Without floor_currency they stay empty,
// read as USD.
func (ex *exchange) floorCurrencies(req *ortb.Request) {
	if ex.floorCur == nil {
		return
	}
	for i := range req.Imps {
		imp := &req.Imps[i]
		if len(imp.BidFloorCur) == 0 {
			imp.BidFloorCur = ex.floorCur
		}
		for j := range imp.Deals {
			if d := &imp.Deals[j]; len(d.BidFloorCur) == 0 {
				d.BidFloorCur = ex.floorCur
			}
		}
	}
}
