package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/features"
	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// stride is the float32 values per record: features, label, p_true.
const stride = features.Width + 2

var errNoImp = errors.New("featurize: imp_id not in the request")

type config struct {
	logs      []string
	out       string
	campaigns string // campaign directory, optional
	maxRows   int
	seed      uint64 // recorded only
	vendorID  int    // privacy.vendor_id of the bidder the model is for
	// keysAllUsers writes every row's user.id to rows.keys, allowed or
	// not: for simulator logs only, whose users are made up and whose
	// evaluation (eval_report.py) needs the id behind the ground truth.
	keysAllUsers bool
}

// logRow is the part of a simulator log line (simulator.LogRow) used here.
type logRow struct {
	TS        int64           `json:"ts"`
	RequestID string          `json:"request_id"`
	Version   string          `json:"version"`
	Request   json.RawMessage `json:"request"`
	ImpID     string          `json:"imp_id"`
	CID       string          `json:"cid"`
	CrID      string          `json:"crid"`
	ADomain   []string        `json:"adomain"`
	Format    string          `json:"format"`
	W         int             `json:"w"`
	H         int             `json:"h"`
	Click     int             `json:"click"`
	Eval      struct {
		TrueCTR float64 `json:"true_ctr"`
	} `json:"eval"`
}

// meta is rows.json: what the training scripts read (schema, width, rows,
// seed), plus where the rows came from.
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
	Sources       []string `json:"sources"`
	Skipped       int      `json:"skipped"`
	AdsFromConfig int      `json:"ads_from_config"`
	Order         string   `json:"order"`
	// PrivacyVendorID is the vendor id TC strings were judged for: the
	// user-level slots are filled as a bidder with this privacy.vendor_id
	// fills them.
	PrivacyVendorID int `json:"privacy_vendor_id"`
}

// adKey is what the ad slots of a log row depend on.
type adKey struct {
	cid, crid, advertiser, format string
	w, h                          int
}

type cachedAd struct {
	ad     features.Ad
	config bool // built from the campaign config
}

// featurizer turns log lines into records; one per run, not concurrent.
type featurizer struct {
	parser  ortb.Parser
	req     ortb.Request
	imp     [features.ImpWidth]float32
	snap    *campaigns.Snapshot
	ads     map[adKey]cachedAd
	pubs    map[string]struct{}
	camps   map[string]struct{}
	crs     map[string]struct{}
	fromCfg int
	privacy *privacy.Policy
	// userLevel: the last record's request allows user-level data (its
	// user id goes to rows.keys only then, unless keysAllUsers).
	userLevel    bool
	keysAllUsers bool
}

func newFeaturizer(snap *campaigns.Snapshot, pol *privacy.Policy) *featurizer {
	return &featurizer{snap: snap, ads: map[adKey]cachedAd{}, pubs: map[string]struct{}{},
		camps: map[string]struct{}{}, crs: map[string]struct{}{}, privacy: pol}
}

// record appends one record (stride values) for lr to dst.
func (f *featurizer) record(dst []float32, lr *logRow) ([]float32, error) {
	f.req.Version = append(f.req.Version[:0], lr.Version...)
	if err := f.parser.Parse(lr.Request, &f.req); err != nil {
		return dst, fmt.Errorf("request %s: %w", lr.RequestID, err)
	}
	var imp *ortb.Imp
	for i := range f.req.Imps {
		if string(f.req.Imps[i].ID) == lr.ImpID {
			imp = &f.req.Imps[i]
			break
		}
	}
	if imp == nil {
		return dst, fmt.Errorf("request %s imp %q: %w", lr.RequestID, lr.ImpID, errNoImp)
	}
	now := time.Unix(lr.TS, 0).UTC()
	// As the bidder decides, and as its row log keeps a row: training data
	// needs TCF purpose 10 (develop and improve services) beside
	// personalisation where GDPR applies (privacy.Decision.NoTrain); the
	// user-level slots were written without it (an outside audit).
	d := f.privacy.Decide(&f.req)
	userLevel := d.Allows(privacy.Personalize) && !d.NoTrain
	f.userLevel = userLevel
	if !userLevel {
		f.req.DropUserLevel() // as the bidder: no segments, no user.geo
	}
	features.ExtractImp(f.imp[:], &f.req, imp, now, userLevel)
	ad := f.ad(lr)
	dst = features.AppendRow(dst, f.imp[:], &ad)
	f.note(lr)
	return append(dst, float32(lr.Click), float32(lr.Eval.TrueCTR)), nil
}

func (f *featurizer) note(lr *logRow) {
	switch {
	case f.req.HasSite:
		f.pubs[string(f.req.Site.Publisher.ID)] = struct{}{}
	case f.req.HasApp:
		f.pubs[string(f.req.App.Publisher.ID)] = struct{}{}
	}
	f.camps[lr.CID] = struct{}{}
	f.crs[lr.CID+"/"+lr.CrID] = struct{}{}
}

// ad returns the shown ad's slots: from the campaign config when the cid is a
// configured campaign (exactly what the bidder computes), else from the log.
func (f *featurizer) ad(lr *logRow) features.Ad {
	adv := ""
	if len(lr.ADomain) > 0 {
		adv = lr.ADomain[0]
	}
	key := adKey{lr.CID, lr.CrID, adv, lr.Format, lr.W, lr.H}
	ca, ok := f.ads[key]
	if !ok {
		if cr := f.creative(lr); cr != nil {
			var w, h int64
			if len(cr.Sizes) > 0 {
				w, h = cr.Sizes[0].W, cr.Sizes[0].H
			}
			ca = cachedAd{ad: features.NewAd(cr.Campaign.ID, cr.ID, cr.Campaign.Advertiser, cr.MType(), int(w), int(h)), config: true}
		} else {
			mtype, w, h := logMType(lr.Format), 0, 0
			if mtype == 1 {
				w, h = lr.W, lr.H
			}
			ca = cachedAd{ad: features.NewAd(lr.CID, lr.CrID, adv, mtype, w, h)}
		}
		f.ads[key] = ca
	}
	if ca.config {
		f.fromCfg++
	}
	return ca.ad
}

func (f *featurizer) creative(lr *logRow) *campaigns.Creative {
	if f.snap == nil {
		return nil
	}
	c := f.snap.Campaign(lr.CID)
	if c == nil {
		return nil
	}
	for _, cr := range f.snap.Creatives {
		if cr.Campaign == c && cr.ID == lr.CrID {
			return cr
		}
	}
	return nil
}

// logMType maps the log's format to the OpenRTB 2.6 mtype.
func logMType(format string) int {
	switch format {
	case "banner":
		return 1
	case "video":
		return 2
	case "audio":
		return 3
	case "native":
		return 4
	}
	return 0
}

// sortKey orders records by a hash of the request id: a fixed pseudo-random
// order that does not depend on the order of the log lines.
type sortKey struct {
	h          uint64
	rid, impID string
	user       string // user.id, for rows.keys (evaluation only)
	idx        int
}

func keyOf(lr *logRow, idx int) sortKey {
	h := fnv.New64a()
	h.Write([]byte(lr.RequestID))
	return sortKey{h: h.Sum64(), rid: lr.RequestID, impID: lr.ImpID, idx: idx}
}

func compareKeys(a, b sortKey) int {
	switch {
	case a.h != b.h:
		if a.h < b.h {
			return -1
		}
		return 1
	case a.rid != b.rid:
		return strings.Compare(a.rid, b.rid)
	}
	return strings.Compare(a.impID, b.impID)
}

// logFile resolves a -log entry: a directory holds impressions.jsonl.
func logFile(p string) string {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return filepath.Join(p, "impressions.jsonl")
	}
	return p
}

// read featurizes every line of r into recs, appending keys; it stops at max
// records (0 = no limit) and returns how many lines it skipped.
func (f *featurizer) read(r io.Reader, recs []float32, keys []sortKey, max int) ([]float32, []sortKey, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	skipped, line := 0, 0
	for sc.Scan() {
		line++
		if max > 0 && len(keys) >= max {
			break
		}
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var lr logRow
		if err := json.Unmarshal(b, &lr); err != nil {
			return recs, keys, skipped, fmt.Errorf("line %d: %w", line, err)
		}
		n := len(recs)
		var err error
		if recs, err = f.record(recs, &lr); err != nil {
			recs = recs[:n]
			skipped++
			continue
		}
		k := keyOf(&lr, len(keys))
		if f.userLevel || f.keysAllUsers {
			k.user = string(f.req.User.ID) // else empty: no id of a user whose request allows none
		}
		keys = append(keys, k)
	}
	return recs, keys, skipped, sc.Err()
}

func run(cfg config) (*meta, error) {
	var snap *campaigns.Snapshot
	if cfg.campaigns != "" {
		s, err := campaigns.LoadDir(cfg.campaigns)
		if err != nil {
			return nil, fmt.Errorf("campaigns: %w", err)
		}
		snap = s
	}
	pol, err := privacy.New(privacy.Options{VendorID: cfg.vendorID})
	if err != nil {
		return nil, err
	}
	defer pol.Close()
	f := newFeaturizer(snap, pol)
	f.keysAllUsers = cfg.keysAllUsers
	// Size the record and key slices from the logs' bytes (a simulator line
	// is about 1 KB; 700 bytes a line over-estimates the rows a little), so
	// tens of millions of rows are not copied while the slices grow.
	var size int64
	for _, l := range cfg.logs {
		if st, err := os.Stat(logFile(l)); err == nil {
			size += st.Size()
		}
	}
	est := int(min(size/700, 1<<28))
	if cfg.maxRows > 0 {
		est = min(est, cfg.maxRows)
	}
	recs := make([]float32, 0, est*stride)
	keys := make([]sortKey, 0, est)
	skipped := 0
	var sources []string
	for _, l := range cfg.logs {
		p := logFile(l)
		fh, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		var sk int
		recs, keys, sk, err = f.read(fh, recs, keys, cfg.maxRows)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		skipped += sk
		sources = append(sources, p)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no rows in %s", strings.Join(cfg.logs, ","))
	}
	slices.SortFunc(keys, compareKeys)
	m := f.meta(recs, keys, skipped, sources)
	m.Seed, m.PrivacyVendorID = cfg.seed, cfg.vendorID
	if err := write(cfg.out, recs, keys, m); err != nil {
		return nil, err
	}
	return m, nil
}

func (f *featurizer) meta(recs []float32, keys []sortKey, skipped int, sources []string) *meta {
	cols := make([]string, 0, stride)
	for _, sl := range features.Slots {
		cols = append(cols, sl.Name)
	}
	var sumP, clicks float64
	for i := range keys {
		clicks += float64(recs[i*stride+features.Width])
		sumP += float64(recs[i*stride+features.Width+1])
	}
	n := len(keys)
	return &meta{SchemaVersion: features.SchemaVersion, Width: features.Width, Columns: append(cols, "label", "p_true"),
		Rows: n, Publishers: len(f.pubs), Campaigns: len(f.camps), Creatives: len(f.crs),
		MeanPTrue: sumP / float64(n), ClickRate: clicks / float64(n), Generator: "features/cmd/featurize",
		Sources: sources, Skipped: skipped, AdsFromConfig: f.fromCfg, Order: "fnv1a64(request_id), request_id, imp_id"}
}

func write(dir string, recs []float32, keys []sortKey, m *meta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fh, err := os.Create(filepath.Join(dir, "rows.f32"))
	if err != nil {
		return err
	}
	defer fh.Close()
	bw := bufio.NewWriterSize(fh, 1<<20)
	var buf [4 * stride]byte
	for _, k := range keys {
		for j, v := range recs[k.idx*stride : (k.idx+1)*stride] {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		if _, err := bw.Write(buf[:]); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	if err := writeKeys(filepath.Join(dir, "rows.keys"), keys); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "rows.json"), append(b, '\n'), 0o644)
}

// writeKeys writes rows.keys: per record, in the same order, the request id,
// imp id and user.id, tab separated, to join records back to the log. For
// evaluation only (eval_report.py measures what the schema cannot see). The
// user id is empty where the request allows no user-level data (COPPA, an
// opt-out, no consent under GDPR), unless -keys-all-users (simulator logs).
func writeKeys(path string, keys []sortKey) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	bw := bufio.NewWriterSize(fh, 1<<20)
	for _, k := range keys {
		bw.WriteString(k.rid)
		bw.WriteByte('\t')
		bw.WriteString(k.impID)
		bw.WriteByte('\t')
		bw.WriteString(k.user)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return fh.Close()
}
