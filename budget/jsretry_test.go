package budget

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A JetStream API request the cluster leaves unanswered while connected (a
// meta leader being elected while several servers start) is sent again, up
// to jsTries, instead of using the caller's whole deadline on one try. An
// answer that is an error, a request made while not connected (App.Start
// retries and logs each failed start) and the caller's end are not retried.
func TestJSRetry(t *testing.T) {
	defer func(d time.Duration) { jsAttempt = d }(jsAttempt)
	jsAttempt = 20 * time.Millisecond
	up := func() bool { return true }
	down := func() bool { return false }
	unanswered := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tries := 0
	err := jsRetry(ctx, up, func(ctx context.Context) error {
		if tries++; tries < 3 {
			return unanswered(ctx)
		}
		return nil
	})
	if err != nil || tries != 3 {
		t.Errorf("two dropped requests then an answer: err %v after %d tries, want nil after 3", err, tries)
	}

	tries = 0
	errs := []error{nats.ErrNoResponders, nats.ErrTimeout, nil}
	if err := jsRetry(ctx, up, func(context.Context) error { tries++; return errs[tries-1] }); err != nil || tries != 3 {
		t.Errorf("no responders, a client timeout, then an answer: err %v after %d tries, want nil after 3", err, tries)
	}

	tries = 0
	if err := jsRetry(ctx, up, func(ctx context.Context) error { tries++; return unanswered(ctx) }); !errors.Is(err, context.DeadlineExceeded) || tries != jsTries {
		t.Errorf("never answered: err %v after %d tries, want a deadline error after %d", err, tries, jsTries)
	}

	tries = 0
	bad := errors.New("insufficient resources")
	if err := jsRetry(ctx, up, func(context.Context) error { tries++; return bad }); !errors.Is(err, bad) || tries != 1 {
		t.Errorf("an error answer: err %v after %d tries, want it after 1", err, tries)
	}

	tries = 0
	if err := jsRetry(ctx, down, func(ctx context.Context) error { tries++; return unanswered(ctx) }); !errors.Is(err, context.DeadlineExceeded) || tries != 1 {
		t.Errorf("not connected: err %v after %d tries, want a deadline error after 1", err, tries)
	}

	tries = 0
	caller, stop := context.WithCancel(context.Background())
	err = jsRetry(caller, up, func(ctx context.Context) error {
		if tries++; tries == 2 {
			stop()
		}
		return unanswered(ctx)
	})
	if !errors.Is(err, context.Canceled) || tries != 2 {
		t.Errorf("caller gone during the second try: err %v after %d tries, want canceled after 2", err, tries)
	}
}
