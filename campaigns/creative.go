package campaigns

import (
	"fmt"
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
	checkURL(p, path+".landing_url", cc.LandingURL, true, false)
	for i, cat := range cc.Cat {
		u := strings.ToUpper(strings.TrimSpace(cat))
		if !categoryRE.MatchString(u) {
			p.add(fmt.Sprintf("%s.cat[%d]", path, i), "%q is not an IAB category (IAB1..IAB26, IAB1-2)", cat)
			continue
		}
		cr.Cat = append(cr.Cat, u)
	}
	cr.Cat = uniq(cr.Cat)
	for i, a := range cc.Attr {
		if a < 1 || a > 17 {
			p.add(fmt.Sprintf("%s.attr[%d]", path, i), "%d is not an OpenRTB creative attribute (1..17)", a)
		}
	}
	cr.Attr = cc.Attr
	cr.ADomain = c.ADomain
	if len(cc.ADomain) > 0 {
		cr.ADomain = domains(p, path+".adomain", cc.ADomain)
	}
	if cc.Bundle != "" && strings.ContainsAny(cc.Bundle, " /\"") {
		p.add(path+".bundle", "%q is not an app bundle id", cc.Bundle)
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
		cr.MIMEs = cc.MIMEs
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
		if !checkNative(cc.Native, cc.Secure, p, path+".native") {
			return
		}
		tpl = nativeTemplate(cc.Native)
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
	if cc.Secure && strings.Contains(tpl, "http://") {
		p.add(path+"."+want, "contains an http:// URL but the creative is secure")
	}
	cr.Adm = parts
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
	return len(*p.list) == before
}
