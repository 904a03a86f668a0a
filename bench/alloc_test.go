//go:build !race

package bench

import (
	"runtime/debug"
	"strings"
	"testing"
)

// The whole handler allocates nothing per request at 1,000 and 10,000
// generated campaigns, for a bid, a no-bid at the floor, and the ranked
// walk's other stops (a deal request, an app request, a response currency
// other than the campaigns'), once the pooled contexts are warm.
func TestHandlerAllocsGenerated(t *testing.T) {
	bid := string(SiteBanner("0.5"))
	cases := []struct {
		name string
		body string
	}{
		{"bid", bid},
		{"no-bid below every floor", string(SiteBanner("50"))},
		{"eur response", strings.Replace(bid, `"cur":["USD"]`, `"cur":["EUR"]`, 1)},
		{"deal", strings.Replace(bid, `"secure":1,`, `"secure":1,"pmp":{"deals":[{"id":"deal-7","bidfloor":0.1},{"id":"deal-9"}]},`, 1)},
		{"app", strings.NewReplacer(`"site":{"id":"s-5"`, `"app":{"id":"a-5","bundle":"com.example.app5"`).Replace(bid)},
	}
	for _, n := range []int{1000, 10000} {
		f := fixture(t, n, "nomodel", 0)
		for _, c := range cases {
			body := []byte(c.body)
			ctx := fastCtx()
			ctx.Request.KeepBodyBuffer, ctx.Response.KeepBodyBuffer = true, true
			status := serveFast(f.Handler, ctx, body)
			if status != 200 && status != 204 {
				t.Fatalf("%d campaigns, %s: status %d", n, c.name, status)
			}
			if a := leastAllocs(func() { serveFast(f.Handler, ctx, body) }); a != 0 {
				t.Errorf("%d campaigns, %s (status %d): %v allocations per request", n, c.name, status, a)
			}
		}
	}
}

// leastAllocs is the least of three AllocsPerRun with the collector off:
// the budget manager's background goroutines can only add to one of them.
func leastAllocs(f func()) float64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	least := testing.AllocsPerRun(100, f)
	for i := 0; i < 2 && least > 0; i++ {
		least = min(least, testing.AllocsPerRun(100, f))
	}
	return least
}
