package budget

import (
	"strconv"
	"time"
)

// A settled charge on an impression this process does not know (the tier
// has no entry: the process restarted since the impression's last notice,
// the bid is another instance's and its owner did not answer, or the entry
// was evicted early) goes out under generation 0, as the process cannot know
// whether an earlier provisional charge of the impression was reversed. When
// the ledger already holds that id, two histories are possible:
//
//   - the id is the same change recorded before (a replayed bill, or a bill
//     at the price of a provisional win that still stands): a duplicate,
//     nothing to charge;
//   - it is a provisional win that a loss notice reversed (an entry
//     "KEY.0.rev"): the impression now costs nothing, and this bill must be
//     charged again, under the next generation, as the process that saw the
//     loss would have done.
//
// The ledger's message ids tell them apart without reading the stream: the
// process publishes a seal, a zero entry under the reversal's id KEY.g.rev.
// If the stream stores it, no reversal of generation g was recorded, and none
// can be from now on (a later loss of that generation is a duplicate of the
// seal, and the instance that sent it puts the charge back, like any change
// another instance recorded first): the bill stands as the duplicate it was.
// If the stream already has that id from a reversal, the charge was reversed:
// the process charges the level again under KEY.g+1.level, and follows that
// entry the same way. If it has it from another seal (pubDupSeal: another
// process settled the generation first), nothing was reversed. Either way the
// notice is answered once the chain has ended.
//
// The same holds for a provisional win settled here on an impression this
// process may not know (another instance's bid, or a bid from before this
// process started or an early eviction; settle marks the tier entry fUnsure):
// it too goes out under generation 0 and may be taken for a win reversed
// elsewhere. Its bill, at or above that level, then seals the generation,
// and charges again what the win stood for if it finds it reversed.
//
// Before this, such a bill was dropped as a duplicate of the reversed win:
// a billed impression charged nothing (a win, its loss, a restart, then the
// bill; or the bill settled by another instance while the owner was away).

// kindSeal is a seal's LedgerEntry.Kind.
const kindSeal = "seal"

type rcStep uint8

const (
	rcCharge rcStep = iota // the charge itself, or a charge again under a later generation
	rcSeal                 // a zero entry under KEY.g.rev
)

// rcMaxGens bounds how many generations a chain walks (each a reversal
// recorded for the impression; one process reverses an impression at most
// once).
const rcMaxGens = 4

// recharge is the chain of one such charge. After enqueue only the ledger's
// flusher touches it (ledgerDone), and done is closed once, when it ends.
type recharge struct {
	key  string // hex of the impression's key
	gen  uint16 // the generation of the entry in flight
	gens int    // generations walked
	kind string // the charge's kind (win or bill)
	// amount is charged again when the generation turns out reversed: the
	// level this process took to stand (the duplicate it took back, or the
	// level under its own rise).
	amount int64
	// raise is the rise's own entry when the chain follows one (a seal):
	// if the ledger took it for a duplicate of the reversed generation, the
	// rise is charged again with the level under it (sealDone).
	raise raiseWatch
	// delta is what the chain changed of the notice's charge: a duplicate
	// taken back, a charge made again. Written by the flusher; read once
	// done is closed (adjust).
	delta int64
	done  chan struct{}
}

// adjust makes res say what the notice charged once its chain ended: a bill
// the ledger took for a duplicate of the level that stands charged nothing
// (the event log, which records res, said it charged the level again). A
// chain still running (a manual manager's, not waited for) leaves res as is.
func (rc *recharge) adjust(res *Result) {
	if rc == nil {
		return
	}
	select {
	case <-rc.done:
		res.ChargedMicros += rc.delta
	default:
	}
}

func newRecharge(key string, gen uint16, kind string) *recharge {
	return &recharge{key: key, gen: gen, kind: kind, done: make(chan struct{})}
}

// chargeDone follows a charge of a chain once the ledger answered it: stored,
// the chain ends; a duplicate (its spend already taken back by ledgerDone),
// the generation is sealed.
func (m *Manager) chargeDone(e *LedgerEntry, o pubOutcome) {
	rc := e.rc
	if (o != pubDupOther && o != pubDupSeal) || e.Charged <= 0 {
		close(rc.done)
		return
	}
	rc.amount = e.Charged // ledgerDone took it back
	rc.delta -= e.Charged
	se := *e
	se.rc, se.step = rc, rcSeal
	se.MsgID = rc.key + "." + strconv.Itoa(int(rc.gen)) + ".rev"
	se.Kind, se.Charged, se.Provisional, se.Late, se.Capped = kindSeal, 0, false, false, false
	m.ledger.enqueue(&se)
}

// sealDone follows a seal: stored, the duplicate charge stands (the chain
// ends); a duplicate, generation g was reversed, and the level is charged
// again under g+1.
func (m *Manager) sealDone(e *LedgerEntry, o pubOutcome) {
	rc := e.rc
	if o != pubDupOther { // stored, or another seal: no reversal of the generation was (or can be) recorded
		close(rc.done)
		return
	}
	rc.gens++
	if rc.gens >= rcMaxGens || rc.gen == ^uint16(0) {
		m.rechargeGiveUps.Add(1)
		close(rc.done)
		return
	}
	rc.gen++
	if r := rc.raise; r.on && m.ledger.wasDup(r.seq, r.since) {
		// The rise over the level was taken back too, as a duplicate of
		// its own entry in the reversed generation: charge it again with
		// the level under it, or the level would stand below the rule
		// (the review's case: win 500, win 1000, loss elsewhere, restart,
		// win 500 replayed, bill 1000 netted 500).
		rc.amount += r.delta
		rc.raise.on = false
	}
	ce := *e
	ce.rc, ce.step = rc, rcCharge
	ce.MsgID = rc.key + "." + strconv.Itoa(int(rc.gen)) + "." + strconv.FormatInt(e.Level, 10)
	ce.Kind, ce.Charged, ce.Late = rc.kind, rc.amount, true // no hold: late
	a := e.acct
	a.mu.Lock()
	a.spent.Add(ce.Charged)
	a.mu.Unlock()
	rc.delta += ce.Charged
	m.recharges.Add(1)
	m.ledger.enqueue(&ce)
}

// waitRecharge waits for rc's chain to end (nil: nothing to wait for), at
// most until deadline.
func (m *Manager) waitRecharge(rc *recharge, deadline time.Time) error {
	if rc == nil || (m.cfg.manual && !m.ledgerRuns.Load()) {
		return nil
	}
	select {
	case <-rc.done:
		return nil
	default:
	}
	t := time.NewTimer(max(time.Until(deadline), 0))
	defer t.Stop()
	select {
	case <-rc.done:
		return nil
	case <-t.C:
		m.ackTimeouts.Add(1)
		return ErrAckTimeout
	}
}
