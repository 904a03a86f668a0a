package simulator

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// CampaignValue is what an impression is worth to a campaign, so that a
// report can give surplus (value minus price). Amounts are in Currency.
type CampaignValue struct {
	Kind      string  // "fixed_cpm", "target_cpc" or "target_cpa"
	CPM       float64 // fixed_cpm
	CPC       float64 // target_cpc: value of a click
	CPA       float64 // target_cpa: value of a conversion
	ConvRate  float64 // target_cpa: conversions per click
	MaxBidCPM float64 // the bidder caps its own value here (0: no cap)
	Currency  string  // "" is USD
}

// CPMUSD is the value, as a CPM in USD, of an impression clicked with
// probability ctr: the CPM, or ctr x CPC x 1000, or ctr x conversion rate x
// CPA x 1000. capped applies MaxBidCPM, as the bidder does to its own value
// (what it bids at second price); uncapped is the advertiser's worth.
func (v CampaignValue) CPMUSD(ctr float64, capped bool) float64 {
	var cpm float64
	switch v.Kind {
	case "target_cpc":
		cpm = ctr * v.CPC * 1000
	case "target_cpa":
		cpm = ctr * v.ConvRate * v.CPA * 1000
	default:
		cpm = v.CPM
	}
	if capped && v.MaxBidCPM > 0 {
		cpm = min(cpm, v.MaxBidCPM)
	}
	return ToUSD(cpm, orUSD(v.Currency))
}

// needsPCTR says whether the value at the bidder's pCTR needs it (bid.ext.pctr).
func (v CampaignValue) needsPCTR() bool { return v.Kind == "target_cpc" || v.Kind == "target_cpa" }

// campaignFile is the part of a bidder campaign file (campaigns/ format)
// that values an impression.
type campaignFile struct {
	ID       string `yaml:"id"`
	Currency string `yaml:"currency"`
	Status   string `yaml:"status"`
	Strategy struct {
		Kind     string  `yaml:"kind"`
		CPM      string  `yaml:"cpm"`
		CPC      string  `yaml:"cpc"`
		CPA      string  `yaml:"cpa"`
		ConvRate float64 `yaml:"conversion_rate"`
	} `yaml:"bid_strategy"`
	MaxBid string `yaml:"max_bid_cpm"`
}

// LoadCampaignValues reads the value of every active campaign file (*.yaml,
// *.yml) in dir, keyed by campaign id (bid.cid). It reads the files as data, the
// way an exchange-side harness would be told its bidder's goals; it shares
// no code with the bidder.
func LoadCampaignValues(dir string) (map[string]CampaignValue, error) {
	names, err := campaignFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]CampaignValue, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var f campaignFile
		if err := yaml.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("simulator: campaign %s: %w", name, err)
		}
		if f.ID == "" {
			return nil, fmt.Errorf("simulator: campaign %s: no id", name)
		}
		if f.Status != "" && f.Status != "active" {
			continue // it never bids
		}
		v := CampaignValue{Kind: f.Strategy.Kind, ConvRate: f.Strategy.ConvRate, Currency: f.Currency}
		for _, x := range []struct {
			dst *float64
			s   string
		}{{&v.CPM, f.Strategy.CPM}, {&v.CPC, f.Strategy.CPC}, {&v.CPA, f.Strategy.CPA}, {&v.MaxBidCPM, f.MaxBid}} {
			if x.s == "" {
				continue
			}
			if *x.dst, err = strconv.ParseFloat(x.s, 64); err != nil {
				return nil, fmt.Errorf("simulator: campaign %s: amount %q: %w", name, x.s, err)
			}
		}
		out[f.ID] = v
	}
	return out, nil
}

func campaignFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if n, ext := e.Name(), strings.ToLower(filepath.Ext(e.Name())); !e.IsDir() && (ext == ".yaml" || ext == ".yml") { // any case, as the bidder reads them
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}
