package budget

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A JetStream API request the cluster leaves unanswered (a meta leader
// being elected while several servers start) is sent again within the
// start-up deadline instead of using all of it up on one try; an answer that
// is an error is not retried, and the caller's deadline still ends it.
func TestJSRetry(t *testing.T) {
	defer func(d time.Duration) { jsAttempt = d }(jsAttempt)
	jsAttempt = 20 * time.Millisecond

	tries := 0
	dropFirst := func(ctx context.Context) error {
		tries++
		if tries < 3 {
			<-ctx.Done() // unanswered: the try's own bound ends it
			return ctx.Err()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := jsRetry(ctx, dropFirst); err != nil || tries != 3 {
		t.Fatalf("two dropped requests then an answer: err %v after %d tries, want nil after 3", err, tries)
	}

	tries = 0
	errs := []error{nats.ErrNoResponders, nats.ErrTimeout, nil}
	if err := jsRetry(ctx, func(context.Context) error { tries++; return errs[tries-1] }); err != nil || tries != 3 {
		t.Fatalf("no responders, a client timeout, then an answer: err %v after %d tries, want nil after 3", err, tries)
	}

	tries = 0
	bad := errors.New("insufficient resources")
	if err := jsRetry(ctx, func(context.Context) error { tries++; return bad }); !errors.Is(err, bad) || tries != 1 {
		t.Fatalf("an error answer: err %v after %d tries, want it after 1", err, tries)
	}

	tries = 0
	short, cancel2 := context.WithTimeout(context.Background(), 70*time.Millisecond)
	defer cancel2()
	err := jsRetry(short, func(ctx context.Context) error { tries++; <-ctx.Done(); return ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) || short.Err() == nil || tries < 2 {
		t.Fatalf("never answered: err %v after %d tries (caller's deadline passed: %v), want a deadline error after the caller's", err, tries, short.Err() != nil)
	}
}
