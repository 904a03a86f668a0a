package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// A tiny bounded run: both servers answer, the table and ratio print.
func TestRunSmall(t *testing.T) {
	if err := os.Chdir("../../.."); err != nil { // the repository root, where the model paths are relative to
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run([]string{"-campaigns", "200", "-model", "gbdt200", "-conns", "2", "-n", "30", "-warmup", "5", "-rounds", "1", "-max-time", "5s"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fasthttp (openbidder)", "net/http+encoding/json", "throughput ratio"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-model", "xgb"}, &out); err == nil {
		t.Error("unknown model accepted")
	}
}
