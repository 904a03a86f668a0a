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
	vastDurationRE = regexp.MustCompile(`<Duration>\s*(?:<!\[CDATA\[)?\s*([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,3}))?\s*(?:\]\]>)?\s*</Duration>`)
	vastMediaRE    = regexp.MustCompile(`<MediaFile\b[^>]*?\btype\s*=\s*["']\s*([^"'\s;]+)[^"']*["']`) // parameters (; codecs=...) aside
)

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

// protocolName is what an OpenRTB protocol vastProtocols lists is.
func protocolName(p int64) string {
	for v, ps := range vastProtocols {
		if len(v) == 3 { // one name per protocol: "1.0" to "4.2"
			switch p {
			case ps[0]:
				return "VAST " + v + " inline"
			case ps[1]:
				return "VAST " + v + " wrapper"
			}
		}
	}
	return "unknown"
}

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
