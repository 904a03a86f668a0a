package bidder

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestMeasureNoticeEndpoint reports win notices per second and their latency
// through the HTTP endpoint of the real bidder (embedded JetStream, file
// storage, charge on win): each notice is for a distinct impression, so it
// writes a ledger entry and is answered once that entry is durable. Tokens
// are minted with the server's signer (no bid per notice). Client, bidder and
// NATS share the process and the machine. It asserts nothing:
//
//	NOTICE_MEASURE=1 go test -run MeasureNoticeEndpoint -v ./bidder
func TestMeasureNoticeEndpoint(t *testing.T) {
	if os.Getenv("NOTICE_MEASURE") == "" {
		t.Skip("set NOTICE_MEASURE=1")
	}
	app := startApp(t, func(c *Config) { c.Notices.ChargeOn = "win" })
	base := "http://" + app.Addr() + "/notice/win?p=1.50&t="
	mint := func(auction string) string {
		var ends [numNoticeKinds]int
		tok := bidToken{AuctionID: []byte(auction), ImpID: []byte("1"), Campaign: []byte("acme-banner"),
			Creative: []byte("acme-300x250"), Cur: []byte("USD"), PriceMicros: 2_000_000, ChargeMicros: 2000,
			ChargeOnWin: true, Expiry: time.Now().Add(time.Hour)}
		b := app.Server.signer.appendTokens(nil, &tok, &ends)
		return string(b[:ends[noticeWin]])
	}
	for _, senders := range []int{1, 8, 64} {
		client := &fasthttp.Client{MaxConnsPerHost: senders}
		lat := make([][]time.Duration, senders)
		fails := make([]int, senders)
		var wg sync.WaitGroup
		start := time.Now()
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for k := 0; time.Since(start) < 5*time.Second; k++ {
					req.SetRequestURI(base + mint(fmt.Sprint(senders, "-", s, "-", k)))
					t0 := time.Now()
					if err := client.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
						fails[s]++
						continue
					}
					lat[s] = append(lat[s], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		p := func(q int) time.Duration { return all[min(len(all)-1, len(all)*q/100)].Round(time.Microsecond) }
		t.Logf("senders %2d: %6.0f notices/s answered 200, p50 %v, p99 %v (%d failed)",
			senders, float64(len(all))/el.Seconds(), p(50), p(99), sum(fails))
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
