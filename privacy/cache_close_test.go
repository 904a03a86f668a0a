package privacy

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// Gets and sets may still come while the cache is closed (Server.Shutdown
// closes the Policy, and /admin/explain decides privacy after it): before,
// a set racing ristretto's Close panicked (send on closed channel). After
// close the cache has nothing and keeps nothing.
func TestCacheSetDuringClose(t *testing.T) {
	for iter := 0; iter < 200; iter++ {
		c := newCache(1000, time.Hour)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					s := []byte(strconv.Itoa(k*8 + g))
					c.set(s, entry{kind: kindTCF})
					c.get(s, kindTCF)
				}
			}(g)
		}
		time.Sleep(200 * time.Microsecond)
		c.close()
		close(stop)
		wg.Wait()
		c.set([]byte("late"), entry{kind: kindTCF})
		c.wait()
		if _, ok := c.get([]byte("late"), kindTCF); ok {
			t.Fatal("a closed cache kept an entry")
		}
		c.close()
	}
}
