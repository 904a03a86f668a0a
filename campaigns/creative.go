package campaigns

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

func buildCreative(cc *CreativeConfig, c *Campaign, p problems, path string) *Creative {
	n := len(*p.list)
	cr := &Creative{ID: cc.ID, Campaign: c, LandingURL: cc.LandingURL, Secure: cc.Secure, Bundle: cc.Bundle}
	if !idRE.MatchString(cc.ID) {
		p.add(path+".id", "%q must be 1-64 letters, digits, '.', '_' or '-'", cc.ID)
	}
	switch cc.Format {
	case "banner":
		cr.Format = FormatBanner
	case "video":
		cr.Format = FormatVideo
	case "native":
		cr.Format = FormatNative
	case "audio":
		cr.Format = FormatAudio
	case "":
		p.add(path+".format", "required (banner, video, native or audio)")
	default:
		p.add(path+".format", "%q is not banner, video, native or audio", cc.Format)
	}
	for i, s := range cc.Sizes {
		m := sizeRE.FindStringSubmatch(s)
		if m == nil {
			p.add(fmt.Sprintf("%s.sizes[%d]", path, i), "%q is not WxH", s)
			continue
		}
		w, _ := strconv.ParseInt(m[1], 10, 64)
		h, _ := strconv.ParseInt(m[2], 10, 64)
		cr.Sizes = append(cr.Sizes, Size{W: w, H: h})
	}
	if cr.Format == FormatBanner && len(cc.Sizes) == 0 {
		p.add(path+".sizes", "a banner needs at least one size")
	}
	if (cr.Format == FormatNative || cr.Format == FormatAudio) && len(cc.Sizes) > 0 {
		p.add(path+".sizes", "not used by %s creatives", cc.Format)
	}
	buildMarkup(cc, cr, p, path)
	cr.MRAID = cr.Format == FormatBanner && strings.Contains(strings.ToLower(cc.Markup), "mraid.js")
	buildMedia(cc, cr, p, path)
	checkURL(p, path+".landing_url", cc.LandingURL, true, false)
	cr.CatTax = taxonomy(p, path+".cattax", cc.CatTax)
	cr.Cat = categories(p, path+".cat", cc.Cat, cr.CatTax)
	for i, a := range cc.Attr {
		if a < 1 || a > 17 {
			p.add(fmt.Sprintf("%s.attr[%d]", path, i), "%d is not an OpenRTB creative attribute (1..17)", a)
		}
	}
	cr.Attr = cc.Attr
	if cr.Format == FormatVideo && (cr.Skippable == 1 || vastSkippable(cc.VAST)) && !slices.Contains(cr.Attr, attrSkippable) {
		// A skippable video is creative attribute 16 (OpenRTB 2.5 video.skip:
		// a bid whose creative is itself skippable includes it in attr): it
		// is sent in bid.attr and checked against video.battr. Before, a
		// creative with skippable: true or a <Linear skipoffset> bid on
		// imps whose battr blocks 16, without saying it was skippable.
		cr.Attr = append(slices.Clip(cr.Attr), attrSkippable)
	}
	if cc.Skippable != nil && !*cc.Skippable && vastSkippable(cc.VAST) {
		p.add(path+".skippable", "false but the VAST's <Linear> has a skipoffset")
	}
	cr.ADomain = c.ADomain
	if len(cc.ADomain) > 0 {
		cr.ADomain = domains(p, path+".adomain", cc.ADomain)
	}
	if cc.Bundle != "" && strings.ContainsAny(cc.Bundle, " /\"") {
		p.add(path+".bundle", "%q is not an app bundle id", cc.Bundle)
	}
	cr.Language = strings.ToLower(cc.Language)
	if cc.Language != "" && !adLanguageRE.MatchString(cr.Language) {
		p.add(path+".language", "%q is not an ISO 639-1 language code (two letters, or xx: no linguistic content)", cc.Language)
	}
	for i, b := range cc.BType {
		if b < 1 || b > 4 {
			p.add(fmt.Sprintf("%s.btype[%d]", path, i), "%d is not an OpenRTB banner ad type (1..4)", b)
		}
	}
	if len(cc.BType) > 0 && cr.Format != FormatBanner {
		p.add(path+".btype", "only banner creatives have a banner type")
	}
	cr.BType = cc.BType
	if cr.Format == FormatBanner {
		// What the markup is, whatever the file declares: a <script> makes
		// it a JavaScript ad (banner ad type 3), an <iframe> an iframe ad
		// (4), and an imp whose btype blocks them does not get it. Before, a
		// creative that declared no btype bid with a <script> on imps
		// blocking JavaScript ads (an outside targeting audit).
		markup := strings.ToLower(cc.Markup)
		for _, d := range []struct {
			tag   string
			btype int64
		}{{"<script", 3}, {"<iframe", 4}} {
			if strings.Contains(markup, d.tag) && !slices.Contains(cr.BType, d.btype) {
				cr.BType = append(slices.Clip(cr.BType), d.btype)
			}
		}
	}
	if len(*p.list) > n {
		return nil
	}
	return cr
}

func buildMarkup(cc *CreativeConfig, cr *Creative, p problems, path string) {
	has := map[string]bool{"markup": cc.Markup != "", "vast": cc.VAST != "", "native": cc.Native != nil, "mimes": len(cc.MIMEs) > 0}
	var want string
	switch cr.Format {
	case FormatBanner:
		want = "markup"
	case FormatVideo, FormatAudio:
		want = "vast"
	case FormatNative:
		want = "native"
	default:
		return
	}
	for _, f := range []string{"markup", "vast", "native"} {
		if f != want && has[f] {
			p.add(path+"."+f, "not used by %s creatives (use %s)", cr.Format, want)
		}
	}
	if !has[want] {
		p.add(path+"."+want, "required for %s creatives", cr.Format)
		return
	}
	if has["mimes"] && want != "vast" {
		p.add(path+".mimes", "only video and audio creatives have mimes")
	}
	tpl := cc.Markup
	switch want {
	case "vast":
		tpl = cc.VAST
		// MIME types are case-insensitive (RFC 2045): kept in lower case,
		// as the VAST's are read and mimeOK compares them. A declared
		// Video/MP4 was checked against the VAST in lower case but kept
		// as written, and never matched an imp that lists video/mp4.
		for _, m := range cc.MIMEs {
			cr.MIMEs = append(cr.MIMEs, strings.ToLower(m))
		}
		// The types its <MediaFile>s have are what a player gets: mimes
		// default to them, and a declared type none of them has is
		// refused (the conformance audit: a creative declaring audio/mp4
		// with only an audio/mpeg file bid on mp4-only imps). A wrapper
		// has none here: its mimes, or the default, are taken on trust.
		media := vastMediaTypes(tpl)
		for i, m := range cc.MIMEs {
			if len(media) > 0 && !slices.Contains(media, strings.ToLower(m)) {
				p.add(fmt.Sprintf("%s.mimes[%d]", path, i), "%q is not the type of any <MediaFile> in the VAST (%s)", m, strings.Join(media, ", "))
			}
		}
		if len(cr.MIMEs) == 0 {
			cr.MIMEs = media
		}
		if len(cr.MIMEs) == 0 {
			cr.MIMEs = []string{"video/mp4"}
			if cr.Format == FormatAudio {
				cr.MIMEs = []string{"audio/mpeg"}
			}
		}
		if !strings.Contains(tpl, "<VAST") {
			p.add(path+".vast", "does not look like VAST XML (no <VAST element)")
		}
	case "native":
		if checkNative(cc.Native, cc.Secure, p, path+".native") {
			cr.Native = compileNative(cc.Native)
			if cc.Secure && hasHTTPURL(string(AppendNative(nil, cr, nil, nil, nil))) {
				p.add(path+".native", "contains an http:// URL but the creative is secure")
			}
		}
		return
	}
	parts, click, imp, err := compileTemplate(tpl)
	if err != nil {
		p.add(path+"."+want, "%v", err)
		return
	}
	if !imp {
		p.add(path+"."+want, "must contain %s (the impression tracker)", PlaceholderImpURL)
	}
	if !click && cr.Format != FormatAudio {
		p.add(path+"."+want, "must contain %s (the click tracker)", PlaceholderClickURL)
	}
	if cc.Secure && hasHTTPURL(tpl) {
		p.add(path+"."+want, "contains an http:// URL but the creative is secure")
	}
	cr.Adm = parts
}

// hasHTTPURL tells whether markup holds an http:// URL, in any case: a
// URL's scheme is case-insensitive, and a browser loads HTTP://x as
// http://x (a mixed-content warning on a secure page).
func hasHTTPURL(markup string) bool {
	return strings.Contains(strings.ToLower(markup), "http://")
}

func checkNative(n *NativeConfig, secure bool, p problems, path string) bool {
	before := len(*p.list)
	if strings.TrimSpace(n.Title) == "" {
		p.add(path+".title", "required")
	}
	for _, f := range []struct{ name, v string }{{"title", n.Title}, {"description", n.Description}, {"cta", n.CTA}, {"sponsored", n.Sponsored}} {
		if strings.Contains(f.v, "{{") {
			p.add(path+"."+f.name, "placeholders are not allowed in native assets")
		}
	}
	checkURL(p, path+".image_url", n.ImageURL, false, secure)
	checkURL(p, path+".icon_url", n.IconURL, false, secure)
	if n.ImageW < 0 || n.ImageH < 0 {
		p.add(path+".image_w", "image size must not be negative")
	}
	if n.ImageURL == "" && (n.ImageW != 0 || n.ImageH != 0) {
		p.add(path+".image_url", "required with image_w/image_h")
	}
	if n.IconW < 0 || n.IconH < 0 {
		p.add(path+".icon_w", "icon size must not be negative")
	}
	if n.IconURL == "" && (n.IconW != 0 || n.IconH != 0) {
		p.add(path+".icon_url", "required with icon_w/icon_h")
	}
	return len(*p.list) == before
}

// buildMedia checks and compiles the video and audio fields: duration and
// protocols default to what the VAST template says.
func buildMedia(cc *CreativeConfig, cr *Creative, p problems, path string) {
	av := cr.Format == FormatVideo || cr.Format == FormatAudio
	for _, f := range []struct {
		name string
		set  bool
		ok   bool
	}{
		{"duration", cc.Duration != 0, av}, {"protocols", len(cc.Protocols) > 0, av},
		{"plcmt", len(cc.Plcmt) > 0, cr.Format == FormatVideo}, {"skippable", cc.Skippable != nil, cr.Format == FormatVideo},
		{"pod_sequence", len(cc.PodSeq) > 0, av}, {"slot_in_pod", len(cc.SlotInPod) > 0, av},
	} {
		if f.set && !f.ok && cr.Format != 0 {
			p.add(path+"."+f.name, "not used by %s creatives", cr.Format)
		}
	}
	if !av {
		return
	}
	secs, protocol := vastFacts(cc.VAST)
	switch {
	case cc.Duration < 0 || cc.Duration > 3600:
		p.add(path+".duration", "%d is not a duration in seconds (1..3600)", cc.Duration)
	case cc.Duration > 0 && secs > 0 && cc.Duration != secs:
		p.add(path+".duration", "%d but the VAST <Duration> says %d seconds", cc.Duration, secs)
	case cc.Duration > 0:
		cr.Duration = cc.Duration
	default:
		cr.Duration = secs
	}
	cr.Protocols = intsIn(p, path+".protocols", cc.Protocols, 1, 14, "an OpenRTB protocol (1..14)")
	switch {
	case protocol == 0:
	case len(cc.Protocols) > 0 && !slices.Contains(cr.Protocols, protocol):
		p.add(path+".protocols", "%v does not list the VAST's own protocol %d (%s)", cc.Protocols, protocol, protocolNames[protocol])
	default:
		// The markup is one protocol whatever the list says: an imp that
		// takes only VAST 4.0 got a VAST 3.0 document from a creative
		// listing [3, 6, 7] (an outside conformance audit).
		cr.Protocols = []int64{protocol}
	}
	if cr.Format == FormatVideo {
		cr.Linearity = vastLinearity(cc.VAST)
	}
	cr.Delivery = vastDelivery(cc.VAST)
	if cr.Format == FormatVideo {
		cr.VPAID = vastVPAIDOnly(cc.VAST)
	}
	cr.Plcmt = intsIn(p, path+".plcmt", cc.Plcmt, 1, 4, "a video placement (1 instream, 2 accompanying, 3 interstitial, 4 standalone)")
	if cc.Skippable != nil {
		cr.Skippable = -1
		if *cc.Skippable {
			cr.Skippable = 1
		}
	}
	cr.PodSeq = podValues(p, path+".pod_sequence", cc.PodSeq, "a pod (1 first, -1 last)")
	cr.SlotInPod = podValues(p, path+".slot_in_pod", cc.SlotInPod, "a slot in a pod (1 first, -1 last)")
}

// intsIn checks that every value is in [lo, hi] and returns them sorted,
// without repeats.
func intsIn(p problems, path string, in []int64, lo, hi int64, what string) []int64 {
	var out []int64
	for i, v := range in {
		if v < lo || v > hi {
			p.add(fmt.Sprintf("%s[%d]", path, i), "%d is not %s", v, what)
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func podValues(p problems, path string, in []int64, what string) []int64 {
	var out []int64
	for i, v := range in {
		if v != 1 && v != -1 {
			p.add(fmt.Sprintf("%s[%d]", path, i), "%d is not %s", v, what)
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}
