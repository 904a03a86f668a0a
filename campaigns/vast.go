package campaigns

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// What a VAST template says about itself, read once at compile time: the
// version and Wrapper/InLine give the OpenRTB protocol, the first
// <Duration> the length (seconds, a fraction rounded up).
var (
	vastVersionRE  = regexp.MustCompile(`<VAST\b[^>]*?\bversion\s*=\s*["']\s*([0-9]+(?:\.[0-9]+)?)\s*["']`)
	vastWrapperRE  = regexp.MustCompile(`<Wrapper[\s>]`)
	vastLinearRE   = regexp.MustCompile(`<Linear[\s>]`)
	vastNonLinRE   = regexp.MustCompile(`<NonLinear(?:Ads)?[\s>]`)
	vastSkipRE     = regexp.MustCompile(`<Linear\s[^>]*?\bskipoffset\s*=`)
	vastFileRE     = regexp.MustCompile(`<MediaFile\b[^>]*>`)
	vastVPAIDRE    = regexp.MustCompile(`(?i)\bapiFramework\s*=\s*["']\s*VPAID\s*["']`)
	vastDurationRE = regexp.MustCompile(`<Duration>\s*(?:<!\[CDATA\[)?\s*([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,3}))?\s*(?:\]\]>)?\s*</Duration>`)
	vastMediaRE    = regexp.MustCompile(`<MediaFile\b[^>]*?\btype\s*=\s*["']\s*([^"'\s;]+)[^"']*["']`) // parameters (; codecs=...) aside
	vastDeliveryRE = regexp.MustCompile(`<MediaFile\b[^>]*?\bdelivery\s*=\s*["']\s*([A-Za-z]+)\s*["']`)
)

// vastDelivery returns how the template's <MediaFile>s are delivered, as
// OpenRTB's delivery methods (1 streaming, 2 progressive), each once in
// that order; nil when none says (a wrapper, or files without the
// attribute, which VAST requires: taken on trust, as fitting any player).
func vastDelivery(tpl string) []int64 {
	var stream, prog bool
	for _, m := range vastDeliveryRE.FindAllStringSubmatch(tpl, -1) {
		switch strings.ToLower(m[1]) {
		case "streaming":
			stream = true
		case "progressive":
			prog = true
		}
	}
	var out []int64
	if stream {
		out = append(out, 1)
	}
	if prog {
		out = append(out, 2)
	}
	return out
}

// vastMediaTypes returns the MIME types of the template's <MediaFile>s,
// lower case, each once (none for a wrapper, or a template without them).
func vastMediaTypes(tpl string) []string {
	var out []string
	for _, m := range vastMediaRE.FindAllStringSubmatch(tpl, -1) {
		if t := strings.ToLower(m[1]); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// vastProtocols maps a VAST version to its OpenRTB protocol, inline and
// wrapper (AdCOM creative subtypes).
var vastProtocols = map[string][2]int64{
	"1": {1, 4}, "1.0": {1, 4}, "2": {2, 5}, "2.0": {2, 5}, "3": {3, 6}, "3.0": {3, 6},
	"4": {7, 8}, "4.0": {7, 8}, "4.1": {11, 12}, "4.2": {13, 14},
}

// protocolNames names the OpenRTB protocols vastProtocols lists (AdCOM
// creative subtypes).
var protocolNames = [...]string{1: "VAST 1.0 inline", 2: "VAST 2.0 inline", 3: "VAST 3.0 inline",
	4: "VAST 1.0 wrapper", 5: "VAST 2.0 wrapper", 6: "VAST 3.0 wrapper", 7: "VAST 4.0 inline", 8: "VAST 4.0 wrapper",
	11: "VAST 4.1 inline", 12: "VAST 4.1 wrapper", 13: "VAST 4.2 inline", 14: "VAST 4.2 wrapper"}

// vastFacts returns the template's duration in seconds (0 when it has no
// <Duration>) and its protocol (0 when its version is not one OpenRTB lists).
func vastFacts(tpl string) (seconds, protocol int64) {
	if m := vastDurationRE.FindStringSubmatch(tpl); m != nil {
		h, _ := strconv.ParseInt(m[1], 10, 64)
		mi, _ := strconv.ParseInt(m[2], 10, 64)
		s, _ := strconv.ParseInt(m[3], 10, 64)
		seconds = h*3600 + mi*60 + s
		if frac, _ := strconv.ParseInt(m[4]+"0", 10, 64); frac > 0 {
			seconds++
		}
	}
	if m := vastVersionRE.FindStringSubmatch(tpl); m != nil {
		if p, ok := vastProtocols[m[1]]; ok {
			protocol = p[0]
			if vastWrapperRE.MatchString(tpl) {
				protocol = p[1]
			}
		}
	}
	return seconds, protocol
}

// vastLinearity is what the template's ads are, as OpenRTB's
// video.linearity says it: 1 linear (a <Linear> element), 2 non-linear
// (<NonLinearAds>), 0 unknown (neither, or both).
func vastLinearity(tpl string) int64 {
	lin, non := vastLinearRE.MatchString(tpl), vastNonLinRE.MatchString(tpl)
	switch {
	case lin && !non:
		return 1
	case non && !lin:
		return 2
	}
	return 0
}

// attrSkippable is OpenRTB creative attribute 16, "Skippable".
const attrSkippable = 16

// vastSkippable tells whether the template's linear ad is skippable: its
// <Linear> has a skipoffset (VAST 3.0 and later).
func vastSkippable(tpl string) bool { return vastSkipRE.MatchString(tpl) }

// vastVPAIDOnly tells whether every <MediaFile> of the template is a VPAID
// unit (apiFramework="VPAID"), so that a player without VPAID has nothing
// to play; false without media files (a wrapper: not known).
func vastVPAIDOnly(tpl string) bool {
	files := vastFileRE.FindAllString(tpl, -1)
	for _, f := range files {
		if !vastVPAIDRE.MatchString(f) {
			return false
		}
	}
	return len(files) > 0
}

// apiOK checks a video creative against the player's API frameworks
// (video.api; one not listed is not supported, OpenRTB 2.5): a VPAID-only
// creative needs VPAID 1.0 (1) or 2.0 (2). It bid on OMID-only players
// and on players that list none (an outside targeting audit).
func apiOK(cr *Creative, api []int64) bool {
	return !cr.VPAID || slices.Contains(api, 1) || slices.Contains(api, 2)
}

// mraidOK checks a banner creative against the placement's API frameworks
// (banner.api; one not listed is not supported): markup that loads
// mraid.js needs MRAID 1.0 (3), 2.0 (5) or 3.0 (6). It bid on web pages and
// SDKs that list none, where mraid.js is not served and the ad does not
// render (an outside targeting audit).
func mraidOK(cr *Creative, api []int64) bool {
	return !cr.MRAID || slices.Contains(api, 3) || slices.Contains(api, 5) || slices.Contains(api, 6)
}
