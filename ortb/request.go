package ortb

import "bytes"

// Reset empties r for reuse and sets the documented defaults: AT 2, and Unset
// for the tri-state flags (Imp.Secure, Video.Skip, Device.DNT, Device.LMT,
// Regs.COPPA, Regs.GDPR). Every slice keeps its capacity, so a pooled Request stops
// allocating once it has seen its largest request.
func (r *Request) Reset() {
	imps := r.Imps[:0]
	*r = Request{
		Imps:        imps,
		LaterImpIDs: r.LaterImpIDs[:0],
		AT:          2,
		Cur:         r.Cur[:0],
		BCat:        r.BCat[:0],
		ACat:        r.ACat[:0],
		BAdv:        r.BAdv[:0],
		BApp:        r.BApp[:0],
		WLang:       r.WLang[:0],
		WLangB:      r.WLangB[:0],
		WSeat:       r.WSeat[:0],
		BSeat:       r.BSeat[:0],
		Site:        r.Site.empty(),
		App:         r.App.empty(),
		DOOH:        r.DOOH.empty(),
		Device:      Device{DNT: Unset, LMT: Unset},
		User:        r.User.empty(),
		Regs:        r.Regs.empty(),
	}
}

// HasRange reports whether the banner gives 2.5's size range (wmin, wmax,
// hmin or hmax).
func (b *Banner) HasRange() bool { return b.WMin > 0 || b.WMax > 0 || b.HMin > 0 || b.HMax > 0 }

// DropUserLevel removes from r what only user-level consent lets a bidder
// use (package privacy's Personalize): user.data segments, and user.geo
// where it stood in for device.geo (the user's home location is a profile
// field, not the context of the request). Targeting and features then see
// neither.
func (r *Request) DropUserLevel() {
	r.User.Segments = r.User.Segments[:0]
	if r.Device.GeoFromUser {
		r.Device.Geo, r.Device.HasGeo, r.Device.GeoFromUser = Geo{}, false, false
	}
}

// The empty methods return an absent object that keeps the receiver's slice
// capacity.

func (s *Site) empty() Site { return Site{Cat: s.Cat[:0], PageCats: s.PageCats.empty()} }
func (a *App) empty() App   { return App{Cat: a.Cat[:0], PageCats: a.PageCats.empty()} }
func (c *PageCats) empty() PageCats {
	return PageCats{PageCat: c.PageCat[:0], ContentCat: c.ContentCat[:0]}
}
func (u *User) empty() User { return User{Segments: u.Segments[:0]} }
func (g *Regs) empty() Regs {
	return Regs{COPPA: Unset, GDPR: Unset, GPPSID: g.GPPSID[:0], DSARequired: Unset, DSAPubRender: Unset}
}
func (b *Banner) empty() Banner {
	return Banner{Format: b.Format[:0], BAttr: b.BAttr[:0], BType: b.BType[:0], API: b.API[:0]}
}
func (d *DOOH) empty() DOOH {
	return DOOH{VenueType: d.VenueType[:0], PageCats: d.PageCats.empty()}
}
func (p *Pod) empty() Pod       { return Pod{RqdDurs: p.RqdDurs[:0], DurFloors: p.DurFloors[:0]} }
func (n *Native) empty() Native { return Native{BAttr: n.BAttr[:0], Assets: n.Assets[:0]} }

func (v *Video) empty() Video {
	return Video{MIMEs: v.MIMEs[:0], Protocols: v.Protocols[:0], BAttr: v.BAttr[:0], Delivery: v.Delivery[:0], API: v.API[:0], Skip: Unset, Pod: v.Pod.empty()}
}

func (a *Audio) empty() Audio {
	return Audio{MIMEs: a.MIMEs[:0], Protocols: a.Protocols[:0], BAttr: a.BAttr[:0], Delivery: a.Delivery[:0], Pod: a.Pod.empty()}
}

// ImpCount returns the number of impressions.
func (r *Request) ImpCount() int { return len(r.Imps) }

// Publisher returns site.publisher, else app.publisher, else nil.
func (r *Request) Publisher() *Publisher {
	switch {
	case r.HasSite:
		return &r.Site.Publisher
	case r.HasApp:
		return &r.App.Publisher
	}
	return nil
}

// AllowsCurrency reports whether cur is allowed by request.cur (an empty
// list allows any currency).
func (r *Request) AllowsCurrency(cur []byte) bool {
	if len(r.Cur) == 0 {
		return true
	}
	for _, c := range r.Cur {
		if string(c) == string(cur) {
			return true
		}
	}
	return false
}

// nextImp appends an impression, reusing a spare element's slices.
func (r *Request) nextImp() *Imp {
	n := len(r.Imps)
	if n < cap(r.Imps) {
		r.Imps = r.Imps[:n+1]
	} else {
		r.Imps = append(r.Imps, Imp{})
	}
	imp := &r.Imps[n]
	imp.reset()
	return imp
}

// reset empties imp, keeps the capacity of its slices and sets Secure Unset.
func (imp *Imp) reset() {
	*imp = Imp{
		Secure: Unset,
		Banner: imp.Banner.empty(),
		Video:  imp.Video.empty(),
		Audio:  imp.Audio.empty(),
		Native: imp.Native.empty(),
		Deals:  imp.Deals[:0],
	}
}

// MediaTypes returns a bit set of the imp's media objects: 1<<MediaBanner,
// 1<<MediaVideo, 1<<MediaAudio, 1<<MediaNative.
func (imp *Imp) MediaTypes() uint8 {
	var m uint8
	if imp.HasBanner {
		m |= 1 << MediaBanner
	}
	if imp.HasVideo {
		m |= 1 << MediaVideo
	}
	if imp.HasAudio {
		m |= 1 << MediaAudio
	}
	if imp.HasNative {
		m |= 1 << MediaNative
	}
	return m
}

// nextDeal appends a deal, reusing a spare element's WSeat slice.
func (imp *Imp) nextDeal() *Deal {
	n := len(imp.Deals)
	if n < cap(imp.Deals) {
		imp.Deals = imp.Deals[:n+1]
	} else {
		imp.Deals = append(imp.Deals, Deal{})
	}
	d := &imp.Deals[n]
	*d = Deal{WSeat: d.WSeat[:0], WADomain: d.WADomain[:0], DurFloors: d.DurFloors[:0]}
	return d
}

// UserKey identifies the user for frequency caps: a 64-bit FNV-1a hash of
// user.buyeruid (this buyer's id for the person, the same on every
// exchange), else user.id (the exchange's own), else device.ifa (unless
// limit-ad-tracking is on, or the ifa is all zeros: what a device sends when
// it does not allow tracking); 0 when there is none. Spaces around an id are
// not part of it (an id of spaces only is none), and the ifa is hashed in
// one form, a UUID's usual lower case with dashes (IDFA is written in upper
// case, exchanges lower-case it or not, and some drop the dashes): before,
// each form keyed a user of its own, and an outside audit got twice a cap's
// impressions for one device. The usual form hashes as it did before, so
// counts of ids sent that way carry over an upgrade.
// buyeruid and user.id are opaque and keep their case. The features' user
// slot takes the same order. Callers decide whether user-level processing
// is allowed at all (COPPA, GDPR consent).
func (r *Request) UserKey() uint64 {
	if id := bytes.TrimSpace(r.User.BuyerUID); len(id) > 0 {
		return hashID(id, false)
	}
	if id := bytes.TrimSpace(r.User.ID); len(id) > 0 {
		return hashID(id, false)
	}
	if id := r.Device.AdID(); len(id) > 0 {
		return hashID(id, true)
	}
	return 0
}

// hashID is FNV-1a of id, never 0. An ifa is hashed as lower case, and one
// of 32 hex digits without dashes as the UUID it is (8-4-4-4-12 with
// dashes): every form of an advertising id keys one user.
func hashID(id []byte, ifa bool) uint64 {
	h := uint64(14695981039346656037)
	bare := ifa && len(id) == 32 && allHex(id)
	for i, c := range id {
		if ifa && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if bare && (i == 8 || i == 12 || i == 16 || i == 20) {
			h = (h ^ '-') * 1099511628211
		}
		h = (h ^ uint64(c)) * 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// allHex reports whether id is hex digits only.
func allHex(id []byte) bool {
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// zeroID reports whether an advertising id is made of zeros and dashes only
// ("00000000-0000-0000-0000-000000000000"): no id at all.
func zeroID(id []byte) bool {
	for _, b := range id {
		if b != '0' && b != '-' {
			return false
		}
	}
	return true
}

// AdID is the device's advertising id where it may identify the user,
// without spaces around it: nil when it is absent or all zeros, or when the device limits tracking
// (TrackingLimited). The frequency key (UserKey) and the features' user
// slot both read it.
func (d *Device) AdID() []byte {
	ifa := bytes.TrimSpace(d.IFA)
	if len(ifa) == 0 || zeroID(ifa) || d.TrackingLimited() {
		return nil
	}
	return ifa
}

// TrackingLimited says whether the device limits the use of its
// advertising id: limit-ad-tracking on, or an App Tracking Transparency
// status of restricted (1) or denied (2).
func (d *Device) TrackingLimited() bool {
	return d.LMT == True || d.ATTS == 1 || d.ATTS == 2
}
