package budget

import "errors"

// Sentinel errors of the package.
var (
	ErrUnknownCampaign = errors.New("budget: unknown campaign")
	ErrBadConfig       = errors.New("budget: bad config")
	ErrBadNotice       = errors.New("budget: bad notice")
	ErrForged          = errors.New("budget: forged token")
	ErrExpired         = errors.New("budget: expired token")
	// ErrTooLateToCharge refuses a win or billing notice that comes longer
	// after its bid than the longest de-duplication window: past it, a
	// replay of an earlier notice could no longer be told from a first one,
	// so charging it could charge the impression twice (notice.go).
	ErrTooLateToCharge = errors.New("budget: notice past its de-duplication window (notices.dedup_window) after the bid: not charged")
	ErrNotStarted      = errors.New("budget: manager not started")
	ErrClosed          = errors.New("budget: manager closed")
	// ErrInstanceInUse: Start saw another running process write this
	// instance id's heartbeat (probeInstance); nothing was started.
	ErrInstanceInUse   = errors.New("budget: instance_id in use by another running process")
	ErrFlushIncomplete = errors.New("budget: ledger flush incomplete")
	ErrConflict        = errors.New("budget: compare-and-set conflict")
	ErrStoreDown       = errors.New("budget: store unreachable")
	// ErrAckTimeout: the notice's ledger entry was not acknowledged in time.
	// The entry stays queued (money is never dropped); a retried notice
	// waits for that same entry.
	ErrAckTimeout = errors.New("budget: ledger did not acknowledge in time; the charge stays queued, retry")
	// ErrOwnerUnreachable: a loss notice for another instance's bid whose
	// owner did not answer changed nothing here (the owner may hold a
	// provisional charge it would reverse): retry.
	ErrOwnerUnreachable = errors.New("budget: the instance that placed the bid did not answer and the loss changed nothing here; retry")
)

// CampaignError is SetCampaigns' refusal of one campaign's field (its
// currency against its budget record): ErrBadConfig, with the campaign and
// field named so that the caller can name the file too.
type CampaignError struct {
	Campaign, Field, Reason string
}

func (e *CampaignError) Error() string {
	return ErrBadConfig.Error() + ": campaign " + e.Campaign + ": " + e.Field + ": " + e.Reason
}

func (e *CampaignError) Unwrap() error { return ErrBadConfig }
