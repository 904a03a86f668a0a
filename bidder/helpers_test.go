package bidder

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/shading"
	"github.com/valyala/fasthttp"
)

// fixedScorer predicts the same CTR for every row (a test double; the real
// models are tested in ctr/ and wired in app_test.go).
type fixedScorer struct {
	p   float32
	err error
}

func (f *fixedScorer) Score(deadline time.Time, rows, out []float32) error {
	if f.err != nil {
		return f.err
	}
	if !deadline.IsZero() && time.Now().After(deadline) { // zero: no deadline
		return ctr.ErrDeadline
	}
	for i := range out {
		out[i] = f.p
	}
	return nil
}
func (f *fixedScorer) Width() int   { return 40 }
func (f *fixedScorer) Name() string { return "fixed" }

// fakeMoney allows everything unless told otherwise and records holds.
type fakeMoney struct {
	deny    reason
	noHold  bool
	capped  bool
	holds   []int64
	nextID  uint64
	unholds []uint64 // holds released by withdrawn bids
	// observed counts the requests handed to the traffic forecast.
	observed atomic.Int64
}

func (f *fakeMoney) allow(ci int, maxCharge int64, now time.Time, _ uint64) reason { return f.deny }
func (f *fakeMoney) observeRequest(now time.Time)                                  { f.observed.Add(1) }
func (f *fakeMoney) freqLeft(ci int, user uint64, now time.Time) int64 {
	if f.capped || user == 0 {
		return 0
	}
	return math.MaxInt64
}
func (f *fakeMoney) hold(ci int, amount int64, user uint64, now time.Time) (uint64, reason) {
	if f.noHold {
		return 0, reasonBudget
	}
	f.nextID++
	if len(f.holds) < cap(f.holds) {
		f.holds = append(f.holds, amount)
	}
	return f.nextID, reasonNone
}

func (f *fakeMoney) unhold(c *campaigns.Campaign, hold uint64, user uint64, now time.Time) {
	f.unholds = append(f.unholds, hold)
}

// fakeSigner is a deterministic HMAC token for tests of the bid path only;
// the production signer is budget's (see budget_adapter.go).
type fakeSigner struct {
	key  []byte
	pool *sync.Pool
}

type fakeScratch struct {
	h    hash.Hash
	buf  []byte
	kind [1]byte
}

func newFakeSigner(key string) fakeSigner {
	k := []byte(key)
	return fakeSigner{key: k, pool: &sync.Pool{New: func() any { return &fakeScratch{h: hmac.New(sha256.New, k), buf: make([]byte, 0, 512)} }}}
}

func (f fakeSigner) appendTokens(dst []byte, t *bidToken, ends *[numNoticeKinds]int) []byte {
	for k := noticeKind(0); k < numNoticeKinds; k++ {
		dst = f.appendToken(dst, t, k)
		ends[k] = len(dst)
	}
	if t.SegOK {
		dst = f.appendBinding(dst, t)
	}
	return dst
}

// appendBinding appends the tag binding t.Seg to t's payload.
func (f fakeSigner) appendBinding(dst []byte, t *bidToken) []byte {
	sc := f.pool.Get().(*fakeScratch)
	defer f.pool.Put(sc)
	seg, n := segmentBytes(t.Seg, t.NoMinToWin)
	b := append(fakePayload(sc.buf[:0], t), seg[:n]...)
	b = append(b, 0x80)
	sc.h.Reset()
	sc.h.Write(b)
	b = sc.h.Sum(b[:0])[:8]
	sc.buf = b
	return base64.RawURLEncoding.AppendEncode(dst, b)
}

func (f fakeSigner) appendToken(dst []byte, t *bidToken, kind noticeKind) []byte {
	sc := f.pool.Get().(*fakeScratch)
	defer f.pool.Put(sc)
	b := fakePayload(sc.buf[:0], t)
	sc.h.Reset()
	sc.h.Write(b)
	sc.kind[0] = byte(kind)
	sc.h.Write(sc.kind[:]) // bound to its endpoint
	b = sc.h.Sum(b)[:len(b)+8]
	sc.buf = b
	return base64.RawURLEncoding.AppendEncode(dst, b)
}

func fakePayload(b []byte, t *bidToken) []byte {
	b = binary.AppendUvarint(b, uint64(t.PriceMicros))
	b = binary.AppendUvarint(b, uint64(t.ChargeMicros))
	b = binary.AppendUvarint(b, t.Hold)
	b = binary.AppendUvarint(b, t.User)
	b = binary.AppendUvarint(b, uint64(t.Expiry.Unix()))
	b = binary.AppendUvarint(b, uint64(math.Float32bits(t.PCTR)))
	win := uint64(0)
	if t.ChargeOnWin {
		win = 1
	}
	b = binary.AppendUvarint(b, win)
	b = binary.AppendUvarint(b, uint64(t.FloorMicros))
	issued := uint64(0) // when the bid was made, as the real tokens say
	if !t.Issued.IsZero() {
		issued = uint64(t.Issued.UnixNano())
	}
	b = binary.AppendUvarint(b, issued)
	for _, f := range [][]byte{t.AuctionID, t.ImpID, t.Campaign, t.Creative, t.Cur} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var errFakeForged = errors.New("forged")

func (f fakeSigner) parseToken(src, seg []byte, kind noticeKind, now time.Time) (bidToken, error) {
	t, err := f.parse(src, kind, now)
	if err != nil || len(seg) == 0 {
		return t, err
	}
	t.SegBad = true
	key, noMTW, tag, ok := splitSegment(seg)
	if !ok {
		return t, nil
	}
	t.Seg, t.SegOK, t.NoMinToWin = key, true, noMTW
	if string(f.appendBinding(nil, &t)) != string(tag) {
		t.Seg, t.SegOK, t.NoMinToWin = shading.Key{}, false, false
		return t, nil
	}
	t.SegBad = false
	return t, nil
}

func (f fakeSigner) parse(src []byte, kind noticeKind, now time.Time) (bidToken, error) {
	raw, err := base64.RawURLEncoding.DecodeString(string(src))
	if err != nil || len(raw) < 8 {
		return bidToken{}, errFakeForged
	}
	body, sum := raw[:len(raw)-8], raw[len(raw)-8:]
	m := hmac.New(sha256.New, f.key)
	m.Write(body)
	m.Write([]byte{byte(kind)})
	if !hmac.Equal(m.Sum(nil)[:8], sum) {
		return bidToken{}, errFakeForged
	}
	var t bidToken
	var v [9]uint64
	for i := range v {
		x, n := binary.Uvarint(body)
		if n <= 0 {
			return bidToken{}, errFakeForged
		}
		v[i], body = x, body[n:]
	}
	t.PriceMicros, t.ChargeMicros, t.Hold, t.User = int64(v[0]), int64(v[1]), v[2], v[3]
	t.Expiry = time.Unix(int64(v[4]), 0)
	t.PCTR = math.Float32frombits(uint32(v[5]))
	t.ChargeOnWin = v[6] == 1
	t.FloorMicros = int64(v[7])
	if v[8] != 0 {
		t.Issued = time.Unix(0, int64(v[8]))
	}
	for _, f := range []*[]byte{&t.AuctionID, &t.ImpID, &t.Campaign, &t.Creative, &t.Cur} {
		l, n := binary.Uvarint(body)
		if n <= 0 || uint64(len(body)-n) < l {
			return bidToken{}, errFakeForged
		}
		*f, body = body[n:n+int(l)], body[n+int(l):]
	}
	if now.After(t.Expiry) {
		return bidToken{}, ErrNoticeExpired
	}
	return t, nil
}

// recSink records notices.
type recSink struct {
	mu      sync.Mutex
	charges map[string]int64
	lost    map[string]bool
	events  []string
}

func (r *recSink) key(t *bidToken) string { return string(t.AuctionID) + "/" + string(t.ImpID) }

// charge and release report a repeat as the budget sink does: a charge on
// an impression charged before or not above its charge, a second loss, a
// loss after a charge.
func (r *recSink) charge(t *bidToken, kind noticeKind, c int64, now time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.charges == nil {
		r.charges = map[string]int64{}
	}
	prev, seen := r.charges[r.key(t)]
	repeat := seen && (c <= prev || prev > 0)
	if !seen || c > prev {
		r.charges[r.key(t)] = c
	}
	r.events = append(r.events, kind.String()+" "+r.key(t))
	return repeat, nil
}
func (r *recSink) release(t *bidToken, reason int64, now time.Time) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost == nil {
		r.lost = map[string]bool{}
	}
	repeat := r.lost[r.key(t)] || r.charges[r.key(t)] > 0
	r.lost[r.key(t)] = true
	r.events = append(r.events, "loss "+r.key(t))
	return repeat, nil
}
func (r *recSink) impression(t *bidToken, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "imp "+r.key(t))
	return nil
}
func (r *recSink) click(t *bidToken, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "click "+r.key(t))
	return nil
}

type testServer struct {
	*Server
	money *fakeMoney
	sink  *recSink
	score *fixedScorer
}

func newTestServer(t testing.TB, edit func(*Config)) *testServer {
	t.Helper()
	cfg := &Config{InstanceID: "test", Model: ModelConfig{GBDT: "unused.json"}, Notices: NoticeConfig{Key: "k"},
		Limits: LimitsConfig{InternalBudget: 150 * time.Millisecond}} // loaded test machines stall
	cfg.Currency.Rates = map[string]float64{"USD": 1, "EUR": 1.1, "GBP": 1.25}
	if edit != nil {
		edit(cfg)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{money: &fakeMoney{holds: make([]int64, 0, 64)}, sink: &recSink{}, score: &fixedScorer{p: 0.02}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts.Server = newServer(cfg, log, func(*campaigns.Snapshot) (money, error) { return ts.money, nil }, ts.sink, newFakeSigner("k"))
	snap, err := campaigns.LoadDir("testdata/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.SetCampaigns(snap); err != nil {
		t.Fatal(err)
	}
	ts.SetScorer(ts.score)
	return ts
}

// do runs one request through the handler on a fresh RequestCtx.
func (ts *testServer) do(method, uri string, body []byte, hdr ...string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(hdr); i += 2 {
		ctx.Request.Header.Set(hdr[i], hdr[i+1])
	}
	ctx.Request.SetBody(body)
	ts.handle(&ctx)
	var r fasthttp.Response
	ctx.Response.CopyTo(&r)
	return &r
}

func (ts *testServer) bid(body []byte, hdr ...string) *fasthttp.Response {
	return ts.do("POST", "/openrtb2/bid", body, hdr...)
}

// stalledReason: the no-bid reasons of a request that ran out of time.
var stalledReason = map[string]bool{"tmax": true, "deadline": true, "late": true, "overload": true}

// bidInTime is bid, posted again (for up to 10 s) while the answer is a
// no-bid for want of time (tmax, deadline, late, overload; its holds
// released): a stall of the loaded test machine past the tests' 150 ms
// internal budget says nothing of the state under test. Any other answer
// is returned.
func (ts *testServer) bidInTime(body []byte, hdr ...string) *fasthttp.Response {
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := ts.bid(body, hdr...)
		if r.StatusCode() != 204 || !stalledReason[string(r.Header.Peek("x-nobid-reason"))] || time.Now().After(end) {
			return r
		}
	}
}

// testCampaignConfigs reads testdata/campaigns as configs (newTestServer's
// campaigns), for a test to edit and compile.
func testCampaignConfigs(t *testing.T) []campaigns.Config {
	t.Helper()
	files, _ := filepath.Glob("testdata/campaigns/*.yaml")
	var cfgs []campaigns.Config
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := campaigns.ParseConfig(f, data)
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, c)
	}
	return cfgs
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
