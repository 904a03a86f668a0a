package main

import (
	"os"
	"reflect"
	"testing"

	"github.com/openbidder/openbidder/campaigns"
)

func TestRunWritesLoadableFiles(t *testing.T) {
	dir := t.TempDir()
	if err := run(40, 5, dir, true); err != nil {
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
	if err := run(40, 5, dir2, false); err != nil {
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
