package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openbidder/openbidder/budget"
)

// A notice answered 200 is in the ledger: a bidder (embedded NATS, file
// storage) under concurrent bids and notices is killed with SIGKILL, then an
// embedded server opened on its store directory must hold, for every
// notice that was answered 200, an entry whose level is at least that
// notice's charge.
func TestKilledBidderKeepsAcknowledgedCharges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBidder(t)
	root, _ := filepath.Abs("../../..")
	dir := t.TempDir()
	camps := filepath.Join(dir, "campaigns")
	os.MkdirAll(camps, 0o755)
	src, err := os.ReadFile(filepath.Join(root, "bidder/testdata/campaigns/acme.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(camps, "acme.yaml"), src, 0o644)
	listen, admin := freeAddr(t), freeAddr(t)
	store := filepath.Join(dir, "nats")
	cfg := filepath.Join(dir, "bidder.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`campaigns_dir: %s
watch_every: -1s
public_url: http://%s
limits: {internal_budget: 150ms}
model: {gbdt: %s/configs/models/gbdt.manifest.json, provider: "off"}
notices: {key: kill-test-key-0123456789, charge_on: billing}
budget: {store_dir: %s}
`, camps, listen, root, store)), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", cfg, "-listen", listen, "-admin-listen", admin)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	poll(t, func() bool { c, _ := do("GET", "http://"+listen+"/readyz", nil); return c == 200 })
	req, _ := os.ReadFile(filepath.Join(root, "bidder/testdata/requests/site-banner.json"))

	// Load: each sender bids, then sends the win (provisional at one price)
	// and the bill (at a price as high or higher), recording every notice
	// answered 200 with the charge it reported.
	var (
		mu    sync.Mutex
		acked = map[string]int64{} // auction -> highest charge answered 200
		n200  int
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	send := func(auction, u string, cents int) {
		code, _ := do("GET", strings.ReplaceAll(u, "${AUCTION_PRICE}", fmt.Sprintf("%d.%02d", cents/100, cents%100)), nil)
		if code == 200 {
			mu.Lock()
			acked[auction] = max(acked[auction], int64(cents)*10) // $x CPM = x*1000 micros per impression
			n200++
			mu.Unlock()
		}
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				auction := fmt.Sprintf("kill-%d-%d", w, k)
				code, body := do("POST", "http://"+listen+"/openrtb2/bid", bytes.Replace(req, []byte("req-site-banner"), []byte(auction), 1))
				if code != 200 {
					if code == 0 {
						return // killed
					}
					continue
				}
				var br struct {
					SeatBid []struct {
						Bid []struct{ NURL, BURL string }
					}
				}
				if json.Unmarshal([]byte(body), &br) != nil || len(br.SeatBid) == 0 {
					continue
				}
				b := br.SeatBid[0].Bid[0]
				cents := 100 + k%90
				send(auction, b.NURL, cents)
				send(auction, b.BURL, cents+k%7)
			}
		}()
	}
	// Kill once enough notices were acknowledged, or after a bounded time.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := n200
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the load runs meanwhile
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if n200 == 0 {
		t.Fatalf("no notice acknowledged before the kill\n%s", logs.String())
	}

	srv, err := budget.StartEmbedded(budget.EmbeddedOptions{StoreDir: store, Port: -1, ReadyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	levels := ledgerLevels(t, srv.ClientURL())
	missing := 0
	for auction, charge := range acked {
		if levels[auction] < charge {
			missing++
			if missing <= 5 {
				t.Errorf("auction %s: notice answered 200 with a charge of %d, ledger level %d", auction, charge, levels[auction])
			}
		}
	}
	t.Logf("%d notices answered 200 for %d impressions before SIGKILL; ledger holds %d impressions; %d missing",
		n200, len(acked), len(levels), missing)
}

// ledgerLevels sums the ledger's entries per auction (each impression's charge).
func ledgerLevels(t *testing.T, url string) map[string]int64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, budget.LedgerStream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for left := info.State.Msgs; left > 0; {
		batch, err := c.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := uint64(0)
		for m := range batch.Messages() {
			var e budget.LedgerEntry
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatal(err)
			}
			out[e.Auction] += e.Charged
			got++
		}
		if got == 0 {
			t.Fatalf("ledger read stalled with %d messages left", left)
		}
		left -= got
	}
	return out
}
