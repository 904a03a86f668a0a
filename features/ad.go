package features

// Ad holds a candidate creative's slots, computed once when campaigns load.
// The zero Ad writes all-zero ad slots.
type Ad struct {
	slots [AdWidth]float32
}

// NewAd computes the ad slots of one creative. mtype is the creative's
// media type (1 banner, 2 video, 3 audio, 4 native); w and h its size in
// pixels, 0 when it is not sized (video, native, flexible).
func NewAd(campaignID, creativeID, advertiser string, mtype int, w, h int) Ad {
	var a Ad
	s := &a.slots
	s[SlotCampaign-ImpWidth] = catSlot(SlotCampaign, campaignID)
	if creativeID != "" {
		hc := fnvAddByte(fnvAdd(fnvOffset, campaignID), '/')
		s[SlotCreative-ImpWidth] = bucket(fnvAdd(hc, creativeID), Slots[SlotCreative].Buckets)
	}
	s[SlotAdvertiser-ImpWidth] = catSlot(SlotAdvertiser, advertiser)
	s[SlotAdFormat-ImpWidth] = float32(clampInt(int64(mtype), 0, 255))
	w64, h64 := clampInt(int64(w), 0, 1<<16), clampInt(int64(h), 0, 1<<16)
	s[SlotAdW-ImpWidth], s[SlotAdH-ImpWidth] = float32(w64), float32(h64)
	s[SlotAdSizeCat-ImpWidth] = sizeSlot(SlotAdSizeCat, w64, h64)
	return a
}

// SetAd writes the ad slots [ImpWidth, Width) of row, whose imp slots must
// already be filled (SlotAdFit compares the two). It panics if
// len(row) < Width.
func SetAd(row []float32, ad *Ad) {
	r := row[:Width:Width]
	copy(r[ImpWidth:], ad.slots[:])
	r[SlotAdFit] = adFit(r)
}

// adFit is 1 when the imp offers the ad's media type and, for a sized ad,
// the ad's size equals the imp's primary size.
func adFit(r []float32) float32 {
	bit := 0
	switch r[SlotAdFormat] {
	case 1:
		bit = 1
	case 2:
		bit = 2
	case 3:
		bit = 4
	case 4:
		bit = 8
	default:
		return 0
	}
	if int(r[SlotImpFormats])&bit == 0 {
		return 0
	}
	if r[SlotAdW] == 0 && r[SlotAdH] == 0 {
		return 1
	}
	if r[SlotAdW] == r[SlotImpW] && r[SlotAdH] == r[SlotImpH] {
		return 1
	}
	return 0
}

// AppendRow appends one full row (Width values) to dst: the imp slots from
// imp (at least ImpWidth values, as written by ExtractImp) and the ad slots
// from ad. It grows dst only when its capacity is short.
func AppendRow(dst []float32, imp []float32, ad *Ad) []float32 {
	n := len(dst)
	dst = append(dst, imp[:ImpWidth]...)
	dst = append(dst, ad.slots[:]...)
	dst[n+SlotAdFit] = adFit(dst[n : n+Width])
	return dst
}
