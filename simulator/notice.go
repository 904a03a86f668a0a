package simulator

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ErrNonLocal is returned for a target or notice URL outside loopback when
// non-local targets are not allowed.
var ErrNonLocal = errors.New("simulator: refusing non-loopback address (use -allow-nonlocal)")

// CheckHost refuses URLs whose host is not loopback (127.0.0.0/8, ::1,
// localhost) unless allowNonLocal.
func CheckHost(rawURL string, allowNonLocal bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("simulator: parse url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("simulator: url %q: scheme must be http or https", rawURL)
	}
	if allowNonLocal {
		return nil
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNonLocal, rawURL)
}

// Macros are the values substituted into nurl, burl, lurl and adm.
type Macros struct {
	AuctionID, BidID, ImpID, SeatID, AdID, Currency string
	Price                                           float64 // in Currency, CPM
	Loss                                            int     // -1 leaves ${AUCTION_LOSS} as is
	// MinToWin is the lowest bid that would have won, in Currency, CPM;
	// 0 leaves ${AUCTION_MIN_TO_WIN} as is (an exchange that does not send it).
	MinToWin float64
}

// FormatPrice writes a CPM with at most 6 decimals, no exponent.
func FormatPrice(p float64) string {
	return strconv.FormatFloat(math.Round(p*1e6)/1e6, 'f', -1, 64)
}

// Substitute replaces the standard OpenRTB auction macros in s.
func Substitute(s string, m Macros) string {
	if !strings.Contains(s, "${AUCTION_") {
		return s
	}
	pairs := []string{
		"${AUCTION_ID}", m.AuctionID, "${AUCTION_BID_ID}", m.BidID, "${AUCTION_IMP_ID}", m.ImpID,
		"${AUCTION_SEAT_ID}", m.SeatID, "${AUCTION_AD_ID}", m.AdID, "${AUCTION_PRICE}", FormatPrice(m.Price),
		"${AUCTION_CURRENCY}", m.Currency,
	}
	if m.Loss >= 0 {
		pairs = append(pairs, "${AUCTION_LOSS}", strconv.Itoa(m.Loss))
	}
	if m.MinToWin > 0 {
		pairs = append(pairs, "${AUCTION_MIN_TO_WIN}", FormatPrice(m.MinToWin))
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// Trackers are the URLs found in an ad's markup.
type Trackers struct {
	Imp   []string // paths ending /notice/imp
	Click []string // paths ending /notice/click
}

// FindTrackers scans adm (HTML, VAST XML or a Native 1.2 response JSON) for
// http(s) URLs whose path ends /notice/imp or /notice/click. HTML/XML
// entities (&amp;) and JSON escapes (\/, \u0026) are undone.
func FindTrackers(adm string) Trackers {
	var t Trackers
	s := strings.NewReplacer(`\/`, `/`, `\u0026`, `&`, `&amp;`, `&`, `&#38;`, `&`).Replace(adm)
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "http")
		if j < 0 {
			break
		}
		start := i + j
		rest := s[start:]
		if !strings.HasPrefix(rest, "http://") && !strings.HasPrefix(rest, "https://") {
			i = start + 4
			continue
		}
		end := strings.IndexAny(rest, "\"'<> \t\r\n]\\")
		if end < 0 {
			end = len(rest)
		}
		raw := rest[:end]
		i = start + end
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(u.Path, "/notice/imp"):
			t.Imp = append(t.Imp, raw)
		case strings.HasSuffix(u.Path, "/notice/click"):
			t.Click = append(t.Click, raw)
		}
	}
	return t
}

// NoticeKind names what a fired URL is.
type NoticeKind int

// Notice kinds.
const (
	KindWin NoticeKind = iota
	KindBill
	KindLoss
	KindImp
	KindClick
	numKinds
)

var kindNames = [numKinds]string{"win", "bill", "loss", "imp", "click"}

func (k NoticeKind) String() string { return kindNames[k] }

// NoticeConfig shapes how notices are sent. Zero fields take DefaultNotices.
type NoticeConfig struct {
	Delay     time.Duration // mean (exponential) delay of nurl/lurl after the auction
	DupProb   float64       // probability a notice is sent twice
	LossProb  float64       // probability a notice is never sent
	LateProb  float64       // probability a notice is sent LateDelay later than planned
	LateDelay time.Duration
	Workers   int // concurrent senders
	Queue     int // bounded queue; notices beyond it are dropped (counted)
	Timeout   time.Duration
}

// DefaultNotices holds the defaults.
var DefaultNotices = NoticeConfig{Delay: 20 * time.Millisecond, DupProb: 0.02, LossProb: 0.01, LateProb: 0.01,
	LateDelay: 5 * time.Second, Workers: 32, Queue: 1 << 16, Timeout: 2 * time.Second}

func (c NoticeConfig) withDefaults() NoticeConfig {
	d := DefaultNotices
	if c.Delay != 0 {
		d.Delay = max(c.Delay, 0)
	}
	share := func(dst *float64, v float64) {
		if v != 0 {
			*dst = max(v, 0)
		}
	}
	share(&d.DupProb, c.DupProb)
	share(&d.LossProb, c.LossProb)
	share(&d.LateProb, c.LateProb)
	if c.LateDelay > 0 {
		d.LateDelay = c.LateDelay
	}
	if c.Workers > 0 {
		d.Workers = c.Workers
	}
	if c.Queue > 0 {
		d.Queue = c.Queue
	}
	if c.Timeout > 0 {
		d.Timeout = c.Timeout
	}
	return d
}

// NoticeCounts are per-kind counters.
type NoticeCounts struct {
	Scheduled int64 `json:"scheduled"`
	Sent      int64 `json:"sent"`
	OK        int64 `json:"ok"` // 2xx or 3xx
	Failed    int64 `json:"failed"`
	Lost      int64 `json:"lost"`       // dropped on purpose (loss model)
	Dup       int64 `json:"duplicated"` // extra copies sent
	Late      int64 `json:"late"`
	Dropped   int64 `json:"dropped"` // queue full, refused host, or run ended first
}

type notice struct {
	kind NoticeKind
	url  string
}

// Notifier sends notices from a bounded queue with a fixed pool of workers.
type Notifier struct {
	cfg      NoticeConfig
	allowAny bool
	client   *fasthttp.Client
	q        chan notice
	pending  atomic.Int64
	closed   atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	counts   [numKinds]struct {
		sched, sent, ok, failed, lost, dup, late, dropped atomic.Int64
	}
}

// NewNotifier starts the workers.
func NewNotifier(cfg NoticeConfig, allowNonLocal bool) *Notifier {
	cfg = cfg.withDefaults()
	n := &Notifier{cfg: cfg, allowAny: allowNonLocal, q: make(chan notice, cfg.Queue), stop: make(chan struct{}),
		client: &fasthttp.Client{ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxConnsPerHost: cfg.Workers * 2,
			NoDefaultUserAgentHeader: true}}
	for i := 0; i < cfg.Workers; i++ {
		n.wg.Add(1)
		go n.worker()
	}
	return n
}

// Config is the effective configuration.
func (n *Notifier) Config() NoticeConfig { return n.cfg }

// Fire schedules url after delay, applying the loss, duplication and
// lateness model with the uniform draws u (three values in [0,1)).
func (n *Notifier) Fire(kind NoticeKind, rawURL string, delay time.Duration, u [3]float64) {
	c := &n.counts[kind]
	c.sched.Add(1)
	if rawURL == "" {
		return
	}
	if err := CheckHost(rawURL, n.allowAny); err != nil {
		c.dropped.Add(1)
		return
	}
	if u[0] < n.cfg.LossProb {
		c.lost.Add(1)
		return
	}
	if u[1] < n.cfg.LateProb {
		c.late.Add(1)
		delay += n.cfg.LateDelay
	}
	copies := 1
	if u[2] < n.cfg.DupProb {
		copies = 2
		c.dup.Add(1)
	}
	for i := 0; i < copies; i++ {
		n.after(notice{kind, rawURL}, delay+time.Duration(i)*n.cfg.Delay)
	}
}

func (n *Notifier) after(nt notice, d time.Duration) {
	n.pending.Add(1)
	enqueue := func() {
		if n.closed.Load() {
			n.counts[nt.kind].dropped.Add(1)
			n.pending.Add(-1)
			return
		}
		select {
		case n.q <- nt:
		default:
			n.counts[nt.kind].dropped.Add(1)
			n.pending.Add(-1)
		}
	}
	if d <= 0 {
		enqueue()
		return
	}
	time.AfterFunc(d, enqueue)
}

func (n *Notifier) worker() {
	defer n.wg.Done()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for {
		var nt notice
		select {
		case nt = <-n.q:
		case <-n.stop:
			return
		}
		c := &n.counts[nt.kind]
		req.Reset()
		resp.Reset()
		req.SetRequestURI(nt.url)
		req.Header.SetMethod(fasthttp.MethodGet)
		resp.SkipBody = true
		c.sent.Add(1)
		err := n.client.DoTimeout(req, resp, n.cfg.Timeout) // redirects are not followed
		if err == nil && resp.StatusCode() < 400 {
			c.ok.Add(1)
		} else {
			c.failed.Add(1)
		}
		n.pending.Add(-1)
	}
}

// Pending is how many notices are scheduled or queued but not yet answered.
func (n *Notifier) Pending() int64 { return n.pending.Load() }

// Close waits until nothing is pending or the deadline passes, then stops the
// workers; notices still waiting are counted as dropped.
func (n *Notifier) Close(deadline time.Time) {
	for n.pending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	n.closed.Store(true)
	// Drain what is queued without sending.
	for {
		select {
		case nt := <-n.q:
			n.counts[nt.kind].dropped.Add(1)
			n.pending.Add(-1)
			continue
		default:
		}
		break
	}
	close(n.stop)
	n.wg.Wait()
}

// Counts returns the counters by kind name.
func (n *Notifier) Counts() map[string]NoticeCounts {
	out := make(map[string]NoticeCounts, numKinds)
	for k := NoticeKind(0); k < numKinds; k++ {
		c := &n.counts[k]
		out[k.String()] = NoticeCounts{Scheduled: c.sched.Load(), Sent: c.sent.Load(), OK: c.ok.Load(),
			Failed: c.failed.Load(), Lost: c.lost.Load(), Dup: c.dup.Load(), Late: c.late.Load(), Dropped: c.dropped.Load()}
	}
	return out
}
