package main

import (
	"os"
	"reflect"
	"testing"

	"github.com/openbidder/openbidder/campaigns"
)

func TestRunWritesLoadableFiles(t *testing.T) {
	dir := t.TempDir()
	if err := run(40, 5, dir, true, override{}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 40 {
		t.Fatalf("%d files, %v", len(ents), err)
	}
	s, err := campaigns.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := campaigns.Generate(40, 5)
	for i, c := range s.Campaigns {
		if c.ID != want[i].ID {
			t.Fatalf("campaign %d is %s, want %s", i, c.ID, want[i].ID)
		}
	}
	// Deterministic: a second run writes identical bytes.
	dir2 := t.TempDir()
	if err := run(40, 5, dir2, false, override{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		a, _ := os.ReadFile(dir + "/" + e.Name())
		b, _ := os.ReadFile(dir2 + "/" + e.Name())
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differs between runs", e.Name())
		}
	}
}

// -daily and -pacing replace every campaign's budget and pacing and nothing
// else; a bad value is refused by the compile check.
func TestRunOverride(t *testing.T) {
	dir := t.TempDir()
	if err := run(30, 1, dir, true, override{daily: "100000000", pacing: "asap"}); err != nil {
		t.Fatal(err)
	}
	s, err := campaigns.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := campaigns.Generate(30, 1)
	for i, c := range s.Campaigns {
		if c.ID != want[i].ID || c.Budget.DailyMicros != 100000000*campaigns.MicrosPerUnit || c.Pacing.Mode != campaigns.PacingASAP {
			t.Errorf("%s: daily %d micros, pacing %v", c.ID, c.Budget.DailyMicros, c.Pacing)
		}
	}
	if err := run(3, 1, t.TempDir(), true, override{pacing: "sometimes"}); err == nil {
		t.Error("pacing mode \"sometimes\" accepted")
	}
}
