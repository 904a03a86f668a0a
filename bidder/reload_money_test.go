package bidder

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Money in flight across campaign reloads: bids placed, then their campaign
// removed, re-added with a budget below what it already spent, paused by the
// kill switch, and offered in another currency; every notice of the bids
// placed before still settles by the level rule (never lowered, never
// charged twice), and the refused currency change leaves the money alone.
func TestNoticesSettleAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/campaigns/acme.yaml")
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile("testdata/campaigns/globex.yaml")
	if err != nil {
		t.Fatal(err)
	}
	acme, globex := filepath.Join(dir, "acme.yaml"), filepath.Join(dir, "globex.yaml")
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(acme, src)
	write(globex, other)
	app := startApp(t, func(c *Config) { c.CampaignsDir = dir; c.WatchEvery = time.Hour })
	reload := func(ok bool) {
		t.Helper()
		if err := app.ReloadCampaigns(); (err == nil) != ok {
			t.Fatalf("reload: %v, want ok %v", err, ok)
		}
	}
	b1, b2, b3 := bidOnce(t, app, "rl-1"), bidOnce(t, app, "rl-2"), bidOnce(t, app, "rl-3")
	for _, b := range []string{b1.CID, b2.CID, b3.CID} {
		if b != "acme-banner" {
			t.Fatalf("bid by %s, want acme-banner", b)
		}
	}
	check := func(what string, url, price string, wantSpent, wantHeld int64) {
		t.Helper()
		if url != "" {
			if code, msg := get(t, substitute(url, price)); code != 200 {
				t.Fatalf("%s: %d %s", what, code, msg)
			}
		}
		if s, h := spent(t, app, "acme-banner"); s != wantSpent || h != wantHeld {
			t.Fatalf("%s: spent %d held %d, want %d and %d", what, s, h, wantSpent, wantHeld)
		}
	}
	check("three bids", "", "", 0, 6000)
	// A charge draws from its hold; the rest stays reserved until the hold
	// expires, and a reversed charge goes back to it.
	check("win 1 (provisional)", b1.NURL, "1.50", 1500, 4500)

	// The campaign removed: no more bids, every notice still settles.
	if err := os.Remove(acme); err != nil {
		t.Fatal(err)
	}
	reload(true)
	check("bill 1 after removal (a rise)", b1.BURL, "1.80", 1800, 4200)
	check("win 2 after removal", b2.NURL, "1.00", 2800, 3200)
	check("loss 2 after removal (reversed)", b2.LURL, "", 1800, 4200)
	check("win 2 again (waits for its bill)", b2.NURL, "1.00", 1800, 4200)

	// Re-added with a daily budget under what it spent: charges stand.
	write(acme, bytes.Replace(src, []byte(`daily: "100.00"`), []byte(`daily: "0.50"`), 1))
	reload(true)
	check("bill 3 over the lowered budget", b3.BURL, "2.00", 3800, 2200)
	check("bill 1 replayed", b1.BURL, "1.80", 3800, 2200)
	check("loss 1 after its bill", b1.LURL, "", 3800, 2200)
	check("bill 2 after its loss (billed after all)", b2.BURL, "1.20", 5000, 1000)

	// Another currency for the same id is refused; the money stays in USD.
	write(acme, bytes.Replace(src, []byte("currency: USD"), []byte("currency: EUR"), 1))
	reload(false)
	check("bill 3 after the refused currency change", b3.BURL, "2.00", 5000, 1000)

	// Paused by the kill switch: its notices still settle.
	write(acme, src)
	reload(true)
	b4 := bidOnce(t, app, "rl-4")
	if code, _ := adminDo(t, app, "POST", "/admin/pause", "", "campaign=acme-banner"); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	check("bill 4 while paused", b4.BURL, "0.70", 5700, 2300)
}
