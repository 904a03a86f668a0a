package ortb

import "github.com/valyala/fastjson"

// imps reads request.imp, replacing req.Imps.
func (p *Parser) imps(req *Request, k []byte, v *fastjson.Value) error {
	a, err := getArray(k, v)
	if err != nil {
		return err
	}
	req.Imps = req.Imps[:0]
	req.LaterImpIDs = req.LaterImpIDs[:0]
	for i, e := range a {
		imp := &p.later
		if p.MaxImps <= 0 || i < p.MaxImps {
			imp = req.nextImp()
		} else {
			imp.reset()
		}
		if err := p.parseImp(imp, e); err != nil {
			return within("imp", withinIndex(i, err))
		}
		if imp == &p.later {
			req.LaterImpIDs = append(req.LaterImpIDs, imp.ID) // fastjson's bytes, as every id read
		}
	}
	return nil
}

// parseImp reads one imp object into imp; a null element leaves it as it
// is (a fresh imp: one without id).
func (p *Parser) parseImp(imp *Imp, v *fastjson.Value) error {
	p.impExtRwdd = false
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		if err := visit(o, func(k []byte, v *fastjson.Value) error {
			return p.impField(imp, k, v)
		}); err != nil {
			return err
		}
		// Prebid's 2.5 twin of rwdd: either saying rewarded makes it so (a
		// campaign with targeting.rewarded: false stays out; an outside
		// audit's CTV request signalled it only there).
		imp.Rwdd = imp.Rwdd || p.impExtRwdd
	case fastjson.TypeNull:
	default:
		return &FieldError{Reason: "want object, got " + typeName(v)}
	}
	if len(imp.ID) == 0 {
		return &FieldError{Path: "id", Reason: "missing or empty"}
	}
	return nil
}

func (p *Parser) impField(imp *Imp, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "id":
		return getID(k, v, &imp.ID)
	case "tagid":
		return getString(k, v, &imp.TagID)
	case "bidfloor":
		return getFloat(k, v, &imp.BidFloor)
	case "bidfloorcur":
		return getString(k, v, &imp.BidFloorCur)
	case "secure":
		return getFlag(k, v, &imp.Secure)
	case "instl":
		return getBool(k, v, &imp.Instl)
	case "exp":
		return getInt(k, v, &imp.Exp)
	case "rwdd":
		return getBool(k, v, &imp.Rwdd)
	case "ext": // given once (visit): parseImp reset impExtRwdd
		if ext := extObject(v); ext != nil {
			return within("ext", visit(ext, p.impExtField))
		}
		return nil
	case "qty":
		if isNull(v) {
			imp.HasQty, imp.Qty = false, Qty{}
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		imp.HasQty = true
		return within("qty", visit(o, func(k []byte, v *fastjson.Value) error {
			return qtyField(&imp.Qty, k, v)
		}))
	case "banner":
		if isNull(v) {
			imp.HasBanner, imp.Banner = false, imp.Banner.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		imp.HasBanner = true
		return within("banner", visit(o, func(k []byte, v *fastjson.Value) error {
			return bannerField(&imp.Banner, k, v)
		}))
	case "video":
		if isNull(v) {
			imp.HasVideo, imp.Video = false, imp.Video.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		imp.HasVideo = true
		err = within("video", visit(o, func(k []byte, v *fastjson.Value) error {
			return videoField(&imp.Video, k, v)
		}))
		if vd := &imp.Video; len(vd.Protocols) == 0 && vd.Protocol > 0 {
			vd.Protocols = append(vd.Protocols, vd.Protocol)
		}
		return err
	case "audio":
		if isNull(v) {
			imp.HasAudio, imp.Audio = false, imp.Audio.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		imp.HasAudio = true
		return within("audio", visit(o, func(k []byte, v *fastjson.Value) error {
			return audioField(&imp.Audio, k, v)
		}))
	case "native":
		if isNull(v) {
			imp.HasNative, imp.Native = false, imp.Native.empty()
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		imp.HasNative = true
		return within("native", visit(o, func(k []byte, v *fastjson.Value) error {
			return p.nativeField(&imp.Native, k, v)
		}))
	case "pmp":
		if isNull(v) {
			imp.PrivateAuction, imp.Deals = false, imp.Deals[:0]
			return nil
		}
		o, err := getObject(k, v)
		if o == nil {
			return err
		}
		return within("pmp", visit(o, func(k []byte, v *fastjson.Value) error {
			return pmpField(imp, k, v)
		}))
	}
	return errUnread
}

// impExtField reads imp.ext.prebid.is_rewarded_inventory through visit, as
// every member the view reads: given twice or in another letter case it is
// refused, since encoding/json would read the last or the folded one (with
// Get the first won, and a campaign that never bids rewarded bid on an imp
// Prebid's Go code reads as rewarded: an outside review). Wrong types are no
// signal (ext is free-form).
func (p *Parser) impExtField(k []byte, v *fastjson.Value) error {
	if string(k) != "prebid" {
		return errUnread
	}
	if pb := extObject(v); pb != nil {
		return within("prebid", visit(pb, p.impPrebidField))
	}
	return nil
}

func (p *Parser) impPrebidField(k []byte, v *fastjson.Value) error {
	if string(k) != "is_rewarded_inventory" {
		return errUnread
	}
	f, err := v.Float64()
	p.impExtRwdd = v.Type() == fastjson.TypeTrue || v.Type() == fastjson.TypeNumber && err == nil && f == 1
	return nil
}

func bannerField(b *Banner, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "w":
		return getInt(k, v, &b.W)
	case "h":
		return getInt(k, v, &b.H)
	case "wmin":
		return getInt(k, v, &b.WMin)
	case "wmax":
		return getInt(k, v, &b.WMax)
	case "hmin":
		return getInt(k, v, &b.HMin)
	case "hmax":
		return getInt(k, v, &b.HMax)
	case "format":
		a, err := getArray(k, v)
		if err != nil {
			return err
		}
		b.Format = b.Format[:0]
		for i, e := range a {
			b.Format = append(b.Format, Size{})
			if err := parseSize(&b.Format[i], e); err != nil {
				return within("format", withinIndex(i, err))
			}
		}
		return nil
	case "battr":
		return getInts(k, v, &b.BAttr)
	case "btype":
		return getInts(k, v, &b.BType)
	case "pos":
		return getInt(k, v, &b.Pos)
	case "api":
		return getInts(k, v, &b.API)
	}
	return errUnread
}

// parseSize reads one banner.format[] element into s; null leaves it as it
// is (0x0 when fresh).
func parseSize(s *Size, v *fastjson.Value) error {
	o, err := getObject(nil, v)
	if o == nil {
		return err
	}
	return visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "w":
			return getInt(k, v, &s.W)
		case "h":
			return getInt(k, v, &s.H)
		}
		return errUnread
	})
}

func videoField(vd *Video, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "mimes":
		return getStrings(k, v, &vd.MIMEs)
	case "minduration":
		return getInt(k, v, &vd.MinDuration)
	case "maxduration":
		return getInt(k, v, &vd.MaxDuration)
	case "protocols":
		return getInts(k, v, &vd.Protocols)
	case "protocol":
		return getInt(k, v, &vd.Protocol)
	case "w":
		return getInt(k, v, &vd.W)
	case "h":
		return getInt(k, v, &vd.H)
	case "placement":
		return getInt(k, v, &vd.Placement)
	case "plcmt":
		return getInt(k, v, &vd.Plcmt)
	case "linearity":
		return getInt(k, v, &vd.Linearity)
	case "skip":
		return getFlag(k, v, &vd.Skip)
	case "skipmin":
		return getInt(k, v, &vd.SkipMin)
	case "skipafter":
		return getInt(k, v, &vd.SkipAfter)
	case "battr":
		return getInts(k, v, &vd.BAttr)
	case "delivery":
		return getInts(k, v, &vd.Delivery)
	case "api":
		return getInts(k, v, &vd.API)
	}
	return podField(&vd.Pod, k, v)
}

func audioField(a *Audio, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "mimes":
		return getStrings(k, v, &a.MIMEs)
	case "minduration":
		return getInt(k, v, &a.MinDuration)
	case "maxduration":
		return getInt(k, v, &a.MaxDuration)
	case "protocols":
		return getInts(k, v, &a.Protocols)
	case "battr":
		return getInts(k, v, &a.BAttr)
	case "delivery":
		return getInts(k, v, &a.Delivery)
	}
	return podField(&a.Pod, k, v)
}

// podField reads the pod members video and audio share.
func podField(p *Pod, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "podid":
		return getString(k, v, &p.PodID)
	case "podseq":
		return getInt(k, v, &p.PodSeq)
	case "slotinpod":
		return getInt(k, v, &p.SlotInPod)
	case "poddur":
		return getInt(k, v, &p.PodDur)
	case "maxseq":
		return getInt(k, v, &p.MaxSeq)
	case "rqddurs":
		return getInts(k, v, &p.RqdDurs)
	case "durfloors":
		return getDurFloors(k, v, &p.DurFloors)
	case "mincpmpersec":
		return getFloat(k, v, &p.MinCPMPerSec)
	}
	return errUnread
}

// getDurFloors reads a durfloors array into dst, reusing its capacity; null
// leaves it empty, a null element is an empty (unbounded, 0) range.
func getDurFloors(key []byte, v *fastjson.Value, dst *[]DurFloor) error {
	a, err := getArray(key, v)
	if err != nil {
		return err
	}
	*dst = (*dst)[:0]
	for i, e := range a {
		*dst = append(*dst, DurFloor{})
		f := &(*dst)[len(*dst)-1]
		o, err := getObject(nil, e)
		if o == nil {
			if err != nil {
				return within(string(key), withinIndex(i, err))
			}
			continue
		}
		err = visit(o, func(k []byte, v *fastjson.Value) error {
			switch string(k) {
			case "mindur":
				return getInt(k, v, &f.MinDur)
			case "maxdur":
				return getInt(k, v, &f.MaxDur)
			case "bidfloor":
				return getFloat(k, v, &f.BidFloor)
			}
			return errUnread
		})
		if err != nil {
			return within(string(key), withinIndex(i, err))
		}
	}
	return nil
}

func qtyField(q *Qty, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "multiplier":
		return getFloat(k, v, &q.Multiplier)
	case "sourcetype":
		return getInt(k, v, &q.SourceType)
	case "vendor":
		return getString(k, v, &q.Vendor)
	}
	return errUnread
}

func pmpField(imp *Imp, k []byte, v *fastjson.Value) error {
	switch string(k) {
	case "private_auction":
		return getBool(k, v, &imp.PrivateAuction)
	case "deals":
		a, err := getArray(k, v)
		if err != nil {
			return err
		}
		imp.Deals = imp.Deals[:0]
		for i, e := range a {
			if err := parseDeal(imp.nextDeal(), e); err != nil {
				return within("deals", withinIndex(i, err))
			}
		}
		return nil
	}
	return errUnread
}

// parseDeal reads one pmp.deals[] element into d; null leaves it as it is
// (an empty deal when fresh).
func parseDeal(d *Deal, v *fastjson.Value) error {
	o, err := getObject(nil, v)
	if o == nil {
		return err
	}
	return visit(o, func(k []byte, v *fastjson.Value) error {
		switch string(k) {
		case "id":
			return getString(k, v, &d.ID)
		case "bidfloor":
			return getFloat(k, v, &d.BidFloor)
		case "bidfloorcur":
			return getString(k, v, &d.BidFloorCur)
		case "wseat":
			return getStrings(k, v, &d.WSeat)
		case "at":
			return getInt(k, v, &d.AT)
		case "wadomain":
			return getStrings(k, v, &d.WADomain)
		case "durfloors":
			return getDurFloors(k, v, &d.DurFloors)
		case "mincpmpersec":
			return getFloat(k, v, &d.MinCPMPerSec)
		}
		return errUnread
	})
}
