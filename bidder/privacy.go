package bidder

import (
	"fmt"
	"io"

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
		bc.req.User.Segments = bc.req.User.Segments[:0]
	}
	if !bc.priv.Allows(privacy.FreqCap) {
		return 0
	}
	return bc.req.UserKey()
}

// privacyGauge writes the decision counters and the decoder's counters.
func (s *Server) privacyGauge() gauge {
	return gauge{value: func(w io.Writer, _ string) {
		fmt.Fprintf(w, "# HELP bidder_privacy_decisions_total Bid requests that reached targeting, by privacy decision: allowed, or the first regime that took a user-level use away.\n# TYPE bidder_privacy_decisions_total counter\n")
		for r := range privacy.NumReasons {
			fmt.Fprintf(w, "bidder_privacy_decisions_total{reason=%q} %d\n", privacy.Reason(r).String(), s.privStat.decisions[r].load())
		}
		st := s.privacy.Stats()
		fmt.Fprintf(w, "# HELP bidder_privacy_decodes_total Consent strings decoded (not found in the cache).\n# TYPE bidder_privacy_decodes_total counter\nbidder_privacy_decodes_total %d\n", st.Decodes)
		fmt.Fprintf(w, "# HELP bidder_privacy_malformed_total Decoded consent strings that were malformed (no consent).\n# TYPE bidder_privacy_malformed_total counter\nbidder_privacy_malformed_total %d\n", st.Malformed)
		fmt.Fprintf(w, "# HELP bidder_privacy_decoder_panics_total Consent decoder panics recovered (each a malformed string; report upstream).\n# TYPE bidder_privacy_decoder_panics_total counter\nbidder_privacy_decoder_panics_total %d\n", st.Recovered)
	}}
}
