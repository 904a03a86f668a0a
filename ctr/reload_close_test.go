package ctr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A Watch that read the path just before Close must not load a model into
// the closed holder: that model is never closed (an ONNX session and its
// batcher goroutine leak) and the holder serves again after Close. The
// bidder's close cancels the watch and then closes the holders; before,
// this failed within a few dozen iterations.
func TestWatchAfterCloseLoadsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for iter := 0; iter < 400; iter++ {
		var mu sync.Mutex
		var made []*batchFake
		h := NewHolder(func(string) (Scorer, error) {
			f := &batchFake{width: 1}
			mu.Lock()
			made = append(made, f)
			mu.Unlock()
			return f, nil
		}, nil)
		if err := h.Reload(path); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { h.Watch(ctx, 50*time.Microsecond); close(done) }()
		stop := make(chan struct{})
		var tw sync.WaitGroup
		tw.Add(1)
		go func() { // the model's files keep changing
			defer tw.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				mt := time.Unix(int64(1000+iter*100000+k), 0)
				os.Chtimes(path, mt, mt)
			}
		}()
		time.Sleep(time.Duration(iter%7) * 100 * time.Microsecond)
		cancel() // App.close: cancel, then Close
		h.Close()
		<-done
		close(stop)
		tw.Wait()
		if h.Current() != nil {
			t.Fatalf("iteration %d: the holder serves a model after Close (%d loaded)", iter, len(made))
		}
		mu.Lock()
		for i, f := range made {
			if !f.closed.Load() {
				t.Fatalf("iteration %d: model %d of %d never closed after Close", iter, i, len(made))
			}
		}
		mu.Unlock()
	}
	h := NewHolder(func(string) (Scorer, error) { return &batchFake{width: 1}, nil }, nil)
	h.Close()
	if err := h.Reload(path); !errors.Is(err, ErrUnavailable) || h.Current() != nil {
		t.Fatalf("Reload after Close: %v, current %v", err, h.Current())
	}
}
