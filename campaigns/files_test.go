package campaigns

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// touchFiles creates n empty campaign files in dir in a shuffled order (so
// the directory's own order is not the sorted one) and returns their paths,
// sorted.
func touchFiles(t *testing.T, dir string, n int) []string {
	t.Helper()
	want := make([]string, n)
	for i := range want {
		ext := ".yaml"
		if i%7 == 0 {
			ext = ".yml"
		}
		want[i] = filepath.Join(dir, fmt.Sprintf("c%05d%s", (i*7919)%n, ext))
	}
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(want)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, p := range shuffled {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	return want
}

// The listing of a reload is read in chunks and sorted in runs: it still
// lists exactly the campaign files, sorted (more files than a chunk and
// than a sorted run, so both the merging and the chunked reading run).
func TestCampaignFilesListsSortedCampaignFiles(t *testing.T) {
	dir := t.TempDir()
	want := touchFiles(t, dir, 1300)
	for _, n := range []string{".hidden.yaml", "notes.txt", "README", "c.yaml.bak"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, paced := range []bool{false, true} {
		pause := loadPause{on: paced}
		got, err := campaignFiles(dir, &pause)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paced %v: %d names, want %d sorted; first %q", paced, len(got), len(want), got[:min(3, len(got))])
		}
	}
	if _, err := campaignFiles(filepath.Join(dir, "missing"), &loadPause{}); err == nil {
		t.Fatal("a missing directory listed without an error")
	}
}

// pacedSort orders any list as slices.Sort does: lengths around the run
// size and its multiples, duplicates included.
func TestPacedSortIsSlicesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, sortRun - 1, sortRun, sortRun + 1, 2 * sortRun, 3*sortRun + 7, 5000} {
		in := make([]string, n)
		for i := range in {
			in[i] = fmt.Sprintf("c%d", r.IntN(n+1)) // duplicates
		}
		want := slices.Sorted(slices.Values(in))
		pause := loadPause{on: true}
		pacedSort(in, &pause)
		if !slices.Equal(in, want) {
			t.Fatalf("n=%d: not sorted as slices.Sort sorts", n)
		}
	}
}

// On one P, a request that arrives while a reload lists a large directory
// is read before the listing ends. Listing 6,000 files is a few
// milliseconds, under the runtime's 10 ms preemption: without the pauses in
// campaignFiles the request is read after it, and this test fails (checked
// by removing them). Tried up to three times, as TestReloadLetsRequestsIn
// says why.
func TestCampaignFilesLetsRequestsIn(t *testing.T) {
	dir := t.TempDir()
	want := touchFiles(t, dir, 6000)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for try := range 3 {
		var got []string
		late := readDuring(t, func() {
			pause := newLoadPause(true)
			var err error
			if got, err = campaignFiles(dir, &pause); err != nil {
				t.Fatal(err)
			}
		})
		if len(got) != len(want) {
			t.Fatalf("%d files listed, want %d", len(got), len(want))
		}
		if late < 0 {
			return
		}
		t.Logf("try %d: the request was read %v after the listing ended", try+1, late)
	}
	t.Fatal("in three listings the request was never read before the listing ended")
}
