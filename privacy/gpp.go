package privacy

import (
	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/constants"
)

// GPP section ids the bidder reads (IAB GPP section registry).
const (
	sidTCFEU  = int(constants.SectionTCFEU2) // 2: a TCF v2 string
	sidHeader = int(constants.SectionGPP)    // 3: the header, never a section
	// 4: signal integrity (a signature over the string), no privacy signal
	sidSignalIntegrity = 4
	sidUSPV1           = int(constants.SectionUSPV1) // 6: a CCPA string, "1YNN"
)

// gppSummary is what one GPP string says, per section id (bit i of a mask
// is section i; ids of 64 and up are only flagged in wide).
type gppSummary struct {
	ok          bool   // the header decoded and its section list matches the sections
	present     uint64 // sections in the string
	bad         uint64 // sections that do not decode
	unsupported uint64 // sections this bidder cannot read
	optOut      uint64 // US sections that take user-level uses away
	wide        bool   // a section id of 64 or more
	tcf         tcfVerdict
}

// decodeGPP decodes a GPP string and evaluates each section it can read. It
// allocates.
func decodeGPP(s string, vendor uint16, allowUndisclosed bool) gppSummary {
	if !gppHeaderSane(s) {
		return gppSummary{}
	}
	c, errs := gpp.Parse(s)
	if len(c.SectionTypes) == 0 && len(errs) > 0 || len(c.Sections) != len(c.SectionTypes) {
		return gppSummary{}
	}
	g := gppSummary{ok: true}
	for i, id := range c.SectionTypes {
		if id < 0 || id >= 64 {
			g.wide = true
			continue
		}
		bit := uint64(1) << uint(id)
		g.present |= bit
		optOut, known, ok := usSection(c.Sections[i])
		switch { // go-gpp leaves ids 2 and 6 undecoded (GenericSection)
		case int(id) == sidTCFEU:
			g.tcf = decodeTCF(c.Sections[i].GetValue(), vendor, allowUndisclosed)
			known, ok = true, g.tcf.ok
		case int(id) == sidUSPV1:
			optOut, ok = uspOptOut([]byte(c.Sections[i].GetValue()))
			known = true
		}
		switch {
		case !known:
			g.unsupported |= bit
		case !ok:
			g.bad |= bit
		case optOut:
			g.optOut |= bit
		}
	}
	return g
}
