package bidder

import (
	"sync"
	"testing"
	"time"
)

// A tracker forwarded over NATS can reach trackerSeen.first while Shutdown
// closes it (Server.Shutdown closes the trackers before budget.Close
// unsubscribes from forwarded trackers): before, a Set racing the cache's
// Close panicked (send on closed channel) in the subscription's goroutine,
// which ended the process in the middle of its graceful stop. After close,
// a replay is still told apart (recent).
func TestTrackerSeenFirstDuringClose(t *testing.T) {
	for iter := 0; iter < 200; iter++ {
		ts := newTrackerSeen(1000, time.Hour)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for k := uint64(0); ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					ts.first(noticeImp, &bidToken{AuctionID: []byte("a"), ImpID: []byte("1"), Instance: []byte("x"), Hold: k*8 + uint64(g)})
				}
			}(g)
		}
		time.Sleep(200 * time.Microsecond)
		ts.close()
		close(stop)
		wg.Wait()
		tok := &bidToken{AuctionID: []byte("late"), ImpID: []byte("1"), Instance: []byte("x")}
		if !ts.first(noticeImp, tok) || ts.first(noticeImp, tok) {
			t.Fatal("after close: a first pixel must count once, its replay not")
		}
		ts.wait()
		ts.close()
	}
}
