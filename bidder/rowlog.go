package bidder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// The row log (model.row_log): for a sample of its bids the bidder writes
// the feature row it scored, with the bid's keys, so the rows can be joined
// later with the impression and click events (events.jsonl, keyed by
// auction, imp and campaign id, and the creative where both name one) and a
// model retrained on the bidder's own traffic (ctr/train/retrain.py). It
// never sits on the bid path: the bid path copies
// the record into a pre-allocated slot and hands it to a writer goroutine
// through a bounded queue; when no slot is free the record is dropped and
// counted (STYLE 10), never waited for. Hand-written binary, not a library
// (protobuf, gob): the bid path must not allocate, and the format is small
// enough to read from Python with struct.
//
// File: a header, then records, all little-endian:
//
//	header  "OBRL" | u16 version (1) | u16 width | u8 n | schema version (n bytes)
//	record  u32 body length L | body (L bytes) | u32 CRC-32 (IEEE) of the body
//	body    i64 bid time (unix ns) | f32 pCTR | u8 n + auction id | u8 n + imp id
//	        | u8 n + campaign id | u8 n + creative id | u8 n + model name
//	        | width x f32 feature row
//
// Ids longer than 255 bytes are cut to 255. The file rotates before a record
// would take it past max_bytes: path.(k) becomes path.(k+1) up to backups,
// path becomes path.1, and a new path starts with its own header. A torn
// last record (a crash mid-write) fails its length or CRC and ends the file
// for a reader.

// Row log format constants.
const (
	rowLogMagic   = "OBRL"
	rowLogVersion = 1
	rowLogMaxID   = 255
	// rowLogFixed is the body's fixed part: time, pCTR, five length bytes.
	rowLogFixed = 8 + 4 + 5
)

// rowLog is the bounded queue and its writer.
type rowLog struct {
	cfg    RowLogConfig
	width  int
	schema string
	// threshold: a bid is logged when its sample hash is below it
	// (sample x 2^64; sample 1 logs every bid).
	threshold uint64
	all       bool
	model     func(ctr.Scored) string // the name of the model that scored a record's row (no allocation)

	free, work chan int
	slots      [][]byte // one record each, of capacity rowLogRecordMax

	offered, dropped   atomic.Uint64
	written, bytes     atomic.Uint64
	rotations, errored atomic.Uint64
	done               chan struct{}
	log                *slog.Logger
}

// rowLogRecordMax is the largest record of a row of width values.
func rowLogRecordMax(width int) int { return 4 + rowLogFixed + 5*rowLogMaxID + 4*width + 4 }

// newRowLog opens path (creating its directory) and starts the writer; it
// stops, flushing, when ctx ends (wait blocks until then). model names the
// model that scored a record's row, by which of the chain's scorers did.
func newRowLog(ctx context.Context, cfg RowLogConfig, width int, schema string, model func(ctr.Scored) string, log *slog.Logger) (*rowLog, error) {
	l, err := newRowLogQueue(cfg, width, schema, model, log)
	if err != nil {
		return nil, err
	}
	return l, l.start(ctx)
}

// newRowLogQueue is the queue without its writer (start starts it).
func newRowLogQueue(cfg RowLogConfig, width int, schema string, model func(ctr.Scored) string, log *slog.Logger) (*rowLog, error) {
	if cfg.Path == "" || cfg.Queue < 1 || width < 1 || width > math.MaxUint16 || len(schema) > 255 ||
		!(cfg.Sample > 0 && cfg.Sample <= 1) || cfg.Backups < 1 {
		return nil, fmt.Errorf("%w: model.row_log: path %q, sample %v, queue %d, backups %d, width %d",
			ErrConfig, cfg.Path, cfg.Sample, cfg.Queue, cfg.Backups, width)
	}
	l := &rowLog{cfg: cfg, width: width, schema: schema, model: model, log: log,
		free: make(chan int, cfg.Queue), work: make(chan int, cfg.Queue), slots: make([][]byte, cfg.Queue),
		done: make(chan struct{})}
	if cfg.Sample >= 1 {
		l.all = true
	} else {
		l.threshold = uint64(cfg.Sample * math.MaxUint64)
	}
	for i := range l.slots {
		l.slots[i] = make([]byte, 0, rowLogRecordMax(width))
		l.free <- i
	}
	return l, nil
}

// start opens the file and starts the writer, which stops (flushing) when
// ctx ends.
func (l *rowLog) start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(l.cfg.Path), 0o755); err != nil {
		return err
	}
	w := &rowLogWriter{path: l.cfg.Path, max: l.cfg.MaxBytes, backups: l.cfg.Backups, header: l.header(),
		minBody: rowLogFixed + 4*l.width, maxRecord: rowLogRecordMax(l.width), log: l.log}
	if err := w.open(); err != nil {
		return err
	}
	go l.run(ctx, w)
	return nil
}

func (l *rowLog) header() []byte {
	h := append([]byte(rowLogMagic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint16(h[4:], rowLogVersion)
	binary.LittleEndian.PutUint16(h[6:], uint16(l.width))
	h = append(h, byte(len(l.schema)))
	return append(h, l.schema...)
}

// rowLogSampled picks bids by a hash of the request's arrival time and the
// imp's index: no shared state, unrelated to what the request holds.
func (l *rowLog) sampled(arrival time.Time, imp int) bool {
	if l.all {
		return true
	}
	h := (uint64(arrival.UnixNano()) + uint64(imp)*0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9
	h ^= h >> 31
	return h < l.threshold
}

// offer queues a record for each bid placed in bc (after price and encode)
// that the sample picks. On the bid path: no allocation, no lock, no I/O.
func (l *rowLog) offer(bc *bidCtx) {
	if l == nil {
		return
	}
	for i := range bc.best {
		c := &bc.best[i]
		if c.slot < 0 || !l.sampled(bc.now, i) {
			continue
		}
		l.offered.Add(1)
		var k int
		select {
		case k = <-l.free:
		default:
			l.dropped.Add(1)
			continue
		}
		sl := &bc.slots[c.slot]
		row := bc.rows[c.slot*l.width : (c.slot+1)*l.width]
		l.slots[k] = l.appendRecord(l.slots[k][:0], bc.now, bc.pctr[c.slot], bc.req.ID, bc.req.Imps[sl.imp].ID,
			sl.cand.Campaign.ID, sl.cand.Creative.ID, bc.scoredBy, row, bc.priv.NoTrain, bc.req.Device.GeoFromUser)
		l.work <- k // never blocks: at most cap(work) slot indexes exist
	}
}

// appendRecord appends one record without its CRC (the writer adds it).
// noTrain (privacy.Decision.NoTrain: under GDPR, no basis for TCF purpose
// 10) writes the user-level slots as 0: they scored the bid, but are not
// kept as training data; so are the geo slots (country, region, local hour
// and weekday) when geoFromUser: user.geo stood in for device.geo, the
// user's home location, a profile field (ortb.Request.DropUserLevel).
func (l *rowLog) appendRecord(b []byte, at time.Time, pctr float32, auction, imp []byte, campaign, creative string, by ctr.Scored, row []float32, noTrain, geoFromUser bool) []byte {
	b = append(b, 0, 0, 0, 0) // body length, set below
	b = binary.LittleEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(pctr))
	b = appendShort(b, auction)
	b = appendShort(b, imp)
	b = appendShortString(b, campaign)
	b = appendShortString(b, creative)
	name := ""
	if l.model != nil {
		name = l.model(by)
	}
	b = appendShortString(b, name)
	for i, v := range row {
		if noTrain {
			switch {
			case i < len(features.Slots) && features.Slots[i].User:
				v = 0
			case geoFromUser && geoSlot(i):
				v = noGeo(i)
			}
		}
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// geoSlot tells the slots features fill from Device.Geo.
func geoSlot(i int) bool {
	return i == features.SlotCountry || i == features.SlotRegion || i == features.SlotHour || i == features.SlotDayOfWeek
}

// noGeo is geo slot i as features writes it for a request without geo: 0
// for country and region, -1 (unknown) for the local hour and weekday (0
// would read as midnight on a Sunday; a review).
func noGeo(i int) float32 {
	if i == features.SlotHour || i == features.SlotDayOfWeek {
		return -1
	}
	return 0
}

func appendShort(b, s []byte) []byte {
	s = s[:min(len(s), rowLogMaxID)]
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendShortString(b []byte, s string) []byte {
	s = s[:min(len(s), rowLogMaxID)]
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// run writes queued records until ctx ends, then the ones still queued,
// and closes the file.
func (l *rowLog) run(ctx context.Context, w *rowLogWriter) {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case k := <-l.work:
			l.write(w, k)
		case <-tick.C:
			if err := w.flush(); err != nil {
				l.fail(err)
			}
		case <-ctx.Done():
			for {
				select {
				case k := <-l.work:
					l.write(w, k)
				default:
					if err := w.close(); err != nil {
						l.fail(err)
					}
					return
				}
			}
		}
	}
}

func (l *rowLog) write(w *rowLogWriter, k int) {
	rec := l.slots[k]
	rec = binary.LittleEndian.AppendUint32(rec, crc32.ChecksumIEEE(rec[4:]))
	l.slots[k] = rec
	rotated, err := w.write(rec)
	if rotated {
		l.rotations.Add(1)
	}
	if err != nil {
		l.fail(err)
	} else {
		l.written.Add(1)
		l.bytes.Add(uint64(len(rec)))
	}
	l.free <- k
}

func (l *rowLog) fail(err error) {
	if l.errored.Add(1) == 1 || l.errored.Load()%1000 == 0 { // one line, then one per thousand
		l.log.Warn("row log write failed", "path", l.cfg.Path, "err", err, "failures", l.errored.Load())
	}
}

// wait blocks until the writer has flushed and closed after ctx ended.
func (l *rowLog) wait() {
	if l != nil {
		<-l.done
	}
}

var (
	dRowOffered   = serverDescs.add("row_log_offered_total", "Bids the row log's sample picked.")
	dRowDropped   = serverDescs.add("row_log_dropped_total", "Row log records dropped because the writer fell behind.")
	dRowWritten   = serverDescs.add("row_log_records_total", "Row log records written.")
	dRowBytes     = serverDescs.add("row_log_bytes_total", "Row log bytes written.")
	dRowRotations = serverDescs.add("row_log_rotations_total", "Row log file rotations.")
	dRowErrors    = serverDescs.add("row_log_errors_total", "Row log write errors (records lost).")
)

func (l *rowLog) collect(ch chan<- prometheus.Metric) {
	counterMetric(ch, dRowOffered, float64(l.offered.Load()))
	counterMetric(ch, dRowDropped, float64(l.dropped.Load()))
	counterMetric(ch, dRowWritten, float64(l.written.Load()))
	counterMetric(ch, dRowBytes, float64(l.bytes.Load()))
	counterMetric(ch, dRowRotations, float64(l.rotations.Load()))
	counterMetric(ch, dRowErrors, float64(l.errored.Load()))
}

// rowLogWriter is the file side: buffered writes, rotation by size.
type rowLogWriter struct {
	path    string
	max     int64
	backups int
	header  []byte
	// minBody and maxRecord bound a record body a file of this header
	// holds.
	minBody, maxRecord int
	log                *slog.Logger
	f                  *os.File
	bw                 *bufio.Writer
	size               int64
}

func (w *rowLogWriter) open() error {
	if err := w.repair(); err != nil {
		return err
	}
	// Owner only: the rows hold personal data (docs/privacy.md).
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 64<<10)
	} else {
		w.bw.Reset(f)
	}
	if w.size == 0 {
		n, err := w.bw.Write(w.header)
		w.size += int64(n)
		return err
	}
	return nil
}

// repair readies an existing file for appending: records were appended
// after whatever it ended with, so a torn last record (a crash mid-write)
// hid every record written after the restart from readers until the file
// rotated, and a file of another format (version, width or schema) took
// records its header does not describe (an outside audit). A torn tail is
// cut at the last whole record; a file whose header is not this writer's
// is moved aside, to PATH.other-UNIXNANO (readers of PATH and PATH.N do not
// read it). w.warn reports either.
func (w *rowLogWriter) repair() error {
	b, err := os.ReadFile(w.path) // at most max_bytes or so, once at start
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(b) == 0 {
		return nil // open writes the header
	}
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(b, w.header) {
		aside := w.path + ".other-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.Rename(w.path, aside); err != nil {
			return err
		}
		w.warned("row log file of another format (or a torn header) moved aside; a new file starts", "path", w.path, "moved_to", aside)
		return nil
	}
	good := len(w.header)
	for {
		n := w.recordAt(b, good)
		if n == 0 {
			break
		}
		good += n
	}
	if good == len(b) {
		return nil
	}
	// A whole record after the bad one means a bad record in the middle,
	// not a crash's torn tail: cut, the whole records after it were lost
	// (a recheck). Such a file rotates whole instead, where readers still
	// find it and report the tear (retrain.py refuses it without
	// --accept-torn).
	for pos := good + 1; pos < len(b); pos++ {
		if w.recordAt(b, pos) > 0 {
			if err := w.shiftBackups(); err != nil {
				return err
			}
			w.warned("row log file has a bad record before its end (not a crash's torn tail): rotated whole, a new file starts",
				"path", w.path, "rotated_to", w.path+".1", "bad_at_byte", good)
			return nil
		}
	}
	if err := os.Truncate(w.path, int64(good)); err != nil {
		return err
	}
	w.warned("row log file ended in a torn record (a crash mid-write): cut at the last whole one", "path", w.path,
		"bytes_cut", len(b)-good)
	return nil
}

// recordAt is the size of the whole record at b[pos:] (its length in
// bounds, its body there, its CRC right), 0 where there is none. A body
// shorter than the fixed part and a row is none: a zero-filled tail (a
// power loss on ext4 or XFS) read as empty records whose CRC, of nothing,
// is 0 (a review).
func (w *rowLogWriter) recordAt(b []byte, pos int) int {
	if pos+4 > len(b) {
		return 0
	}
	l := int(binary.LittleEndian.Uint32(b[pos:]))
	if l < w.minBody || l > w.maxRecord || pos+4+l+4 > len(b) ||
		crc32.ChecksumIEEE(b[pos+4:pos+4+l]) != binary.LittleEndian.Uint32(b[pos+4+l:]) {
		return 0
	}
	return 4 + l + 4
}

func (w *rowLogWriter) warned(msg string, args ...any) {
	if w.log != nil {
		w.log.Warn(msg, args...)
	}
}

// write appends rec, rotating first when it would pass max (a file always
// takes its first record).
func (w *rowLogWriter) write(rec []byte) (rotated bool, err error) {
	if w.f == nil { // a rotation failed: try again
		if err := w.open(); err != nil {
			return false, err
		}
	}
	if w.size > int64(len(w.header)) && w.size+int64(len(rec)) > w.max {
		if err := w.rotate(); err != nil {
			return false, err
		}
		rotated = true
	}
	n, err := w.bw.Write(rec)
	w.size += int64(n)
	return rotated, err
}

func (w *rowLogWriter) rotate() error {
	if err := w.close(); err != nil {
		return err
	}
	if err := w.shiftBackups(); err != nil {
		return err
	}
	return w.open()
}

// shiftBackups renames path.(k) to path.(k+1) up to backups and path to
// path.1.
func (w *rowLogWriter) shiftBackups() error {
	os.Remove(w.path + "." + strconv.Itoa(w.backups))
	for k := w.backups - 1; k >= 1; k-- {
		os.Rename(w.path+"."+strconv.Itoa(k), w.path+"."+strconv.Itoa(k+1)) // missing ones are fine
	}
	return os.Rename(w.path, w.path+".1")
}

func (w *rowLogWriter) flush() error {
	if w.f == nil {
		return nil
	}
	return w.bw.Flush()
}

func (w *rowLogWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.bw.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}
