package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// testVendor is the vendor id the fixture's req-11 consents to (purposes
// 1-4): its TC string is the one bidder/privacy_test.go checks as tcAll.
const testVendor = 42

// readRecords reads rows.f32 as records of stride values.
func readRecords(t *testing.T, dir string) [][]float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "rows.f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%(4*stride) != 0 {
		t.Fatalf("rows.f32 has %d bytes, not whole records", len(b))
	}
	var recs [][]float32
	for off := 0; off < len(b); off += 4 * stride {
		r := make([]float32, stride)
		for j := range r {
			r[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[off+4*j:]))
		}
		recs = append(recs, r)
	}
	return recs
}

// fixtureLines are the fixture's log rows, keyed by request id.
func fixtureLines(t *testing.T) map[string]logRow {
	t.Helper()
	b, err := os.ReadFile("testdata/impressions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]logRow{}
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var lr logRow
		if err := json.Unmarshal(l, &lr); err != nil {
			t.Fatal(err)
		}
		out[lr.RequestID] = lr
	}
	return out
}

// want computes a fixture row directly with the serving feature path.
func want(t *testing.T, lr logRow, ad features.Ad) []float32 {
	t.Helper()
	var p ortb.Parser
	var req ortb.Request
	req.Version = []byte(lr.Version)
	if err := p.Parse(lr.Request, &req); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(req.Imps, func(im ortb.Imp) bool { return string(im.ID) == lr.ImpID })
	var imp [features.ImpWidth]float32
	pol, err := privacy.New(privacy.Options{VendorID: testVendor, CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	d := pol.Decide(&req)
	userLevel := d.Allows(privacy.Personalize) && !d.NoTrain
	if !userLevel {
		req.DropUserLevel()
	}
	features.ExtractImp(imp[:], &req, &req.Imps[i], time.Unix(lr.TS, 0), userLevel)
	return features.AppendRow(nil, imp[:], &ad)
}

func TestFeaturizeFixture(t *testing.T) {
	out := t.TempDir()
	m, err := run(config{logs: []string{"testdata"}, out: out, campaigns: "testdata/campaigns", seed: 7, vendorID: testVendor})
	if err != nil {
		t.Fatal(err)
	}
	lines := fixtureLines(t)
	if m.Rows != len(lines)-1 || m.Skipped != 1 || m.AdsFromConfig != 1 || m.Seed != 7 {
		t.Fatalf("rows %d skipped %d from config %d seed %d; want %d, 1 (req-badimp), 1 (req-config), 7",
			m.Rows, m.Skipped, m.AdsFromConfig, m.Seed, len(lines)-1)
	}
	recs := readRecords(t, out)
	if len(recs) != m.Rows {
		t.Fatalf("rows.f32 has %d records, rows.json says %d", len(recs), m.Rows)
	}
	byID := map[string][]float32{}
	for _, lr := range lines {
		if lr.RequestID == "req-badimp" {
			continue
		}
		var ad features.Ad
		switch {
		case lr.RequestID == "req-config": // the campaign config, not the log, names the advertiser and size
			ad = features.NewAd("acme-test", "acme-mrec", "ACME Test Corporation", 1, 300, 250)
		case lr.Format == "banner":
			ad = features.NewAd(lr.CID, lr.CrID, lr.ADomain[0], 1, lr.W, lr.H)
		default: // video and native ads are unsized, as serving writes unsized creatives
			ad = features.NewAd(lr.CID, lr.CrID, lr.ADomain[0], logMType(lr.Format), 0, 0)
		}
		w := append(want(t, lr, ad), float32(lr.Click), float32(lr.Eval.TrueCTR))
		i := slices.IndexFunc(recs, func(r []float32) bool { return slices.Equal(r, w) })
		if i < 0 {
			t.Fatalf("%s: no record equals the serving row %v", lr.RequestID, w)
		}
		byID[lr.RequestID] = recs[i]
	}
	// User-level slots: filled with consent for the vendor (req-p10:
	// purposes 1-4 and 10), zero under GDPR without it (req-8: the
	// simulator's string, which consents to nothing) and under COPPA
	// (package privacy, as the bidder applies it). Training data needs TCF
	// purpose 10 (develop and improve services) too, as the bidder's row log
	// keeps user-level slots only with it: req-11 consents to purposes 1-4
	// alone, so its slots scored a bid but are no training data (an outside
	// audit found them written).
	if byID["req-p10"][features.SlotHasUserID] != 1 || byID["req-11"][features.SlotHasUserID] != 0 ||
		byID["req-noconsent"][features.SlotHasUserID] != 0 || byID["req-8"][features.SlotHasUserID] != 0 {
		t.Errorf("has_user_id with consent %v, without purpose 10 %v, without consent %v, consenting to nothing %v; want 1, 0, 0, 0",
			byID["req-p10"][features.SlotHasUserID], byID["req-11"][features.SlotHasUserID], byID["req-noconsent"][features.SlotHasUserID], byID["req-8"][features.SlotHasUserID])
	}
	if m.PrivacyVendorID != testVendor {
		t.Errorf("rows.json privacy_vendor_id %d", m.PrivacyVendorID)
	}
	if byID["req-da"][features.SlotHasUserID] != 0 {
		t.Errorf("COPPA request has has_user_id %v", byID["req-da"][features.SlotHasUserID])
	}
	// rows.keys names each record's request, imp and user, in record order.
	kb, err := os.ReadFile(filepath.Join(out, "rows.keys"))
	if err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(strings.TrimSuffix(string(kb), "\n"), "\n")
	if len(keys) != len(recs) {
		t.Fatalf("rows.keys has %d lines for %d records", len(keys), len(recs))
	}
	users := map[string]string{}
	for i, k := range keys {
		f := strings.Split(k, "\t")
		lr := lines[f[0]]
		if len(f) != 3 || f[1] != lr.ImpID || !slices.Equal(recs[i], byID[f[0]]) || f[2] != "" && !strings.Contains(string(lr.Request), `"id":"`+f[2]+`"`) {
			t.Errorf("rows.keys line %d %q does not name record %d", i, k, i)
		}
		users[f[0]] = f[2]
	}
	// The user id only where the request allows user-level data: not
	// without consent under GDPR, nor under COPPA (the privacy audit found
	// every raw id written).
	for id, allowed := range map[string]bool{"req-p10": true, "req-11": false, "req-noconsent": false, "req-8": false, "req-da": false} {
		if (users[id] != "") != allowed {
			t.Errorf("rows.keys user of %s %q, want one: %v", id, users[id], allowed)
		}
	}
	// -keys-all-users (simulator logs: made-up users) writes every one.
	all := t.TempDir()
	if _, err := run(config{logs: []string{"testdata"}, out: all, seed: 7, vendorID: testVendor, keysAllUsers: true}); err != nil {
		t.Fatal(err)
	}
	if kb, err := os.ReadFile(filepath.Join(all, "rows.keys")); err != nil || !regexp.MustCompile(`(?m)^req-noconsent\t[^\t]*\t.+$`).Match(kb) {
		t.Errorf("-keys-all-users: no user id for req-noconsent (%v)", err)
	}
	// The second imp of a two-imp request is the one the log names.
	if r := byID["req-2d"]; r[features.SlotImpW] != 300 || r[features.Width] != 1 {
		t.Errorf("req-2d imp_w %v label %v; want the logged imp 2 (300 wide), click 1", r[features.SlotImpW], r[features.Width])
	}
}

// The output does not depend on the order of the log lines.
func TestFeaturizeOrderIndependent(t *testing.T) {
	b, err := os.ReadFile("testdata/impressions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Reverse(lines)
	rev := filepath.Join(t.TempDir(), "reversed.jsonl")
	if err := os.WriteFile(rev, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, c := t.TempDir(), t.TempDir()
	if _, err := run(config{logs: []string{"testdata"}, out: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(config{logs: []string{rev}, out: c}); err != nil {
		t.Fatal(err)
	}
	ra, _ := os.ReadFile(filepath.Join(a, "rows.f32"))
	rc, _ := os.ReadFile(filepath.Join(c, "rows.f32"))
	if len(ra) == 0 || !bytes.Equal(ra, rc) {
		t.Fatalf("rows.f32 differs with the log lines reversed (%d vs %d bytes)", len(ra), len(rc))
	}
}

func TestFeaturizeErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{not json\n"), 0o644)
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, nil, 0o644)
	for _, logs := range []string{bad, empty, filepath.Join(dir, "missing")} {
		if _, err := run(config{logs: []string{logs}, out: t.TempDir()}); err == nil {
			t.Errorf("%s: no error", logs)
		}
	}
}
