package bidder

import (
	"github.com/openbidder/openbidder/privacy"
)

// The privacy parts of the bid path: one decision per request, taken before
// targeting, applied to the frequency-cap key, the segments targeting sees,
// and the user-level feature slots (docs/privacy.md).

// privacyStats counts decisions by reason (hot: striped counters).
type privacyStats struct {
	decisions [privacy.NumReasons]counter
}

func newPrivacyPolicy(c PrivacyConfig) *privacy.Policy {
	p, err := privacy.New(c.options())
	if err != nil {
		panic("bidder: privacy options passed Config.Validate yet: " + err.Error())
	}
	return p
}

// decidePrivacy decides bc.req once, and removes from the request view what
// targeting must not see: without Personalize, user.data segments (so no
// campaign matches on them). It returns the frequency-cap key: the user's,
// or 0 (an unknown user) without FreqCap.
func (s *Server) decidePrivacy(bc *bidCtx) uint64 {
	bc.priv = s.privacy.Decide(&bc.req)
	s.privStat.decisions[bc.priv.Why].add(bc.stripe, 1)
	if !bc.priv.Allows(privacy.Personalize) {
		bc.req.DropUserLevel() // segments, and user.geo standing in for device.geo
	}
	if !bc.priv.Allows(privacy.FreqCap) {
		return 0
	}
	return bc.req.UserKey()
}
