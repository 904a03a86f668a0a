// Command synthdata writes synthetic CTR training rows: plausible bid
// requests and shown ads drawn from a seeded world, their feature rows from
// package features, a click label drawn from a hidden ground-truth CTR
// (truth.go documents it) and that true probability.
//
//	go run ./features/cmd/synthdata -seed 1 -n 800000 -out /tmp/synth
//
// Output, in -out: rows.f32, little-endian float32, n records of
// features.Width + 2 values (features..., label, p_true); rows.json describes
// it. The same -seed always gives the same bytes.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/openbidder/openbidder/features"
)

type meta struct {
	SchemaVersion string   `json:"schema_version"`
	Width         int      `json:"width"`
	Columns       []string `json:"columns"`
	Rows          int      `json:"rows"`
	Seed          uint64   `json:"seed"`
	Publishers    int      `json:"publishers"`
	Campaigns     int      `json:"campaigns"`
	Creatives     int      `json:"creatives"`
	MeanPTrue     float64  `json:"mean_p_true"`
	ClickRate     float64  `json:"click_rate"`
	Generator     string   `json:"generator"`
}

func main() {
	seed := flag.Uint64("seed", 1, "random seed (same seed, same output)")
	n := flag.Int("n", 800000, "rows to write")
	pubs := flag.Int("publishers", 400, "publishers in the world (Zipf traffic)")
	camps := flag.Int("campaigns", 20, "campaigns in the world")
	out := flag.String("out", "synth", "output directory")
	flag.Parse()
	if err := run(*seed, *n, *pubs, *camps, *out); err != nil {
		fmt.Fprintln(os.Stderr, "synthdata:", err)
		os.Exit(1)
	}
}

func run(seed uint64, n, nPubs, nCamps int, out string) error {
	if n <= 0 || nPubs <= 0 || nCamps <= 0 {
		return fmt.Errorf("-n, -publishers and -campaigns must be positive")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	w := newWorld(r, nPubs, nCamps)
	zipf := rand.NewZipf(r, 1.1, 2, uint64(nPubs-1))
	f, err := os.Create(filepath.Join(out, "rows.f32"))
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	ads := make(map[*creative]features.Ad, len(w.creatives))
	for i := range w.creatives {
		c := &w.creatives[i]
		ads[c] = features.NewAd(c.campaign, c.id, c.advertiser, c.mtype, c.w, c.h)
	}
	var s sample
	var rec [features.Width + 2]float32
	var buf [4 * (features.Width + 2)]byte
	var sumP, clicks float64
	for i := 0; i < n; i++ {
		w.draw(r, zipf, &s)
		features.ExtractImp(rec[:], &s.req, &s.req.Imps[0], s.now, s.userLevel)
		ad := ads[s.ad]
		features.SetAd(rec[:], &ad)
		p := sigmoid(truthLogit(&s))
		label := float32(0)
		if r.Float64() < p {
			label = 1
		}
		rec[features.Width], rec[features.Width+1] = label, float32(p)
		sumP += p
		clicks += float64(label)
		for j, v := range rec {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		if _, err := bw.Write(buf[:]); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	cols := make([]string, 0, features.Width+2)
	for _, sl := range features.Slots {
		cols = append(cols, sl.Name)
	}
	m := meta{SchemaVersion: features.SchemaVersion, Width: features.Width, Columns: append(cols, "label", "p_true"),
		Rows: n, Seed: seed, Publishers: nPubs, Campaigns: nCamps, Creatives: len(w.creatives),
		MeanPTrue: sumP / float64(n), ClickRate: clicks / float64(n), Generator: "features/cmd/synthdata"}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "rows.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "synthdata: %d rows, mean p_true %.4f, click rate %.4f, %s\n", n, m.MeanPTrue, m.ClickRate, out)
	return f.Close()
}

func minutes(m int64) time.Duration { return time.Duration(m) * time.Minute }
