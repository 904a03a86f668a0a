package simulator

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestWriteCampaignsRewritesBudgets(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	files := map[string]string{
		"a.yaml": "id: a\ncurrency: USD\nbid_strategy: {kind: fixed_cpm, cpm: \"2\"}\nbudget: {daily: \"5\", total: \"9\"}\npacing: {mode: even}\n",
		"b.yaml": "id: b\ncurrency: EUR\nbid_strategy: {kind: fixed_cpm, cpm: \"2\"}\n",
		"c.yaml": "id: c\nstatus: paused\nbid_strategy: {kind: fixed_cpm, cpm: \"2\"}\n",
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(src, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	total, err := writeCampaigns(src, dst, 10, "-warmup")
	if err != nil {
		t.Fatal(err)
	}
	if want := 10 + ToUSD(10, "EUR"); math.Abs(total-want) > 1e-9 { // the paused one does not count
		t.Fatalf("total %v, want %v", total, want)
	}
	for n := range files {
		b, err := os.ReadFile(filepath.Join(dst, n))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			ID     string            `yaml:"id"`
			Budget map[string]string `yaml:"budget"`
			Pacing map[string]string `yaml:"pacing"`
		}
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(m.ID, "-warmup") || len(m.Budget) != 1 || m.Budget["daily"] != "10.00" || m.Pacing["mode"] != "asap" {
			t.Errorf("%s rewritten as %+v", n, m)
		}
	}
}

func TestWriteBidderConfigSetsPaths(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.yaml")
	os.WriteFile(base, []byte("listen: 127.0.0.1:8080\npricing: {first_price_shade: 0.9}\n"), 0o644)
	dst := filepath.Join(dir, "out.yaml")
	if err := writeBidderConfig(base, dst, map[string]any{"listen": "127.0.0.1:1", "pricing.shading.enabled": true}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst)
	var m struct {
		Listen  string `yaml:"listen"`
		Pricing struct {
			Shade   float64 `yaml:"first_price_shade"`
			Shading struct {
				Enabled bool `yaml:"enabled"`
			} `yaml:"shading"`
		} `yaml:"pricing"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Listen != "127.0.0.1:1" || m.Pricing.Shade != 0.9 || !m.Pricing.Shading.Enabled {
		t.Fatalf("config %+v from %s", m, b)
	}
}

func TestABChangeAndTable(t *testing.T) {
	s := func(v float64) *float64 { return &v }
	off := ABArm{All: AuctionReport{Impressions: 100, SpendUSD: 10, ClicksPerUSD: 2, PricePerImpression: 0.1, SurplusTrueUSD: s(5), SurplusBidderUSD: s(4)}}
	on := ABArm{Shading: true, All: AuctionReport{Impressions: 120, SpendUSD: 10, ClicksPerUSD: 2.4, PricePerImpression: 0.08, SurplusTrueUSD: s(7), SurplusBidderUSD: s(3)}}
	c := abChange(off, on)
	for k, want := range map[string]float64{"clicks_per_usd": 0.2, "impressions": 0.2, "price_per_impression": -0.2,
		"spend": 0, "surplus_true_usd_difference": 2, "surplus_bidder_usd_difference": -1} {
		if math.Abs(c[k]-want) > 1e-9 {
			t.Errorf("change %s = %v, want %v", k, c[k], want)
		}
	}
	if _, ok := c["win_rate"]; ok {
		t.Error("a change from 0 is in the JSON")
	}
	r := &ABReport{Regimes: []ABRegimeResult{{Regime: ABRegime{Name: "binding", DailyBudget: 10}, Off: off, On: on}}}
	var b bytes.Buffer
	r.WriteTable(&b)
	for _, want := range []string{"### binding budgets (daily 10 per campaign, ASAP)", "| clicks per USD | 2.000 | 2.400 | +20.0% |",
		"| surplus USD (true value) | 5.00 | 7.00 | +2.00 USD |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
