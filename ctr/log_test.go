package ctr

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// The holder logs loads and refusals to the logger it was given, not to
// the global one (the bidder hands down its own, with its level and format).
func TestHolderLogsThroughItsLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := NewHolder(func(path string) (Scorer, error) {
		if path == "good" {
			return &batchFake{width: 2}, nil
		}
		return nil, ErrBadModel
	}, log)
	defer h.Close()
	if err := h.Reload("good"); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload("bad"); err == nil {
		t.Fatal("bad model accepted")
	}
	for _, want := range []string{`msg="ctr: model loaded" manifest=good model=fake`, `msg="ctr: model refused, previous model keeps serving" manifest=bad`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}

	// A logger above info hears nothing of a successful load.
	buf.Reset()
	quiet := NewHolder(func(string) (Scorer, error) { return &batchFake{width: 2}, nil },
		slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer quiet.Close()
	if err := quiet.Reload("good"); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("warn-level logger got %q", buf.String())
	}
}
