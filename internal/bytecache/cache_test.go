package bytecache

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestGetSet(t *testing.T) {
	c := New[int](100)
	defer c.Close()
	c.Set([]byte("a"), 1, 0)
	c.Wait()
	if v, ok := c.Get([]byte("a")); !ok || v != 1 {
		t.Fatalf("a: %v, %v", v, ok)
	}
	if _, ok := c.Get([]byte("b")); ok {
		t.Fatal("b was never set")
	}
	var none *Cache[int] // holds nothing, and every call is safe
	none.Set([]byte("a"), 1, 0)
	none.Wait()
	none.Close()
	if _, ok := none.Get([]byte("a")); ok {
		t.Fatal("a nil cache held a value")
	}
}

// Close while others Get and Set: ristretto's own Close closes its set
// channel before it marks the cache closed, and a Set in between panicked
// (send on closed channel). After Close nothing is kept, and a second Close
// is harmless.
func TestCloseDuringSets(t *testing.T) {
	for iter := 0; iter < 200; iter++ {
		c := New[int](1000)
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
					key := []byte(strconv.Itoa(k*8 + g))
					c.Set(key, k, time.Hour)
					c.Get(key)
				}
			}(g)
		}
		time.Sleep(200 * time.Microsecond)
		c.Close()
		close(stop)
		wg.Wait()
		c.Set([]byte("late"), 1, 0)
		c.Wait()
		if _, ok := c.Get([]byte("late")); ok {
			t.Fatal("a closed cache kept a value")
		}
		c.Close()
	}
}
