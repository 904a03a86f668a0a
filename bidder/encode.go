package bidder

import (
	"strconv"

	"github.com/openbidder/openbidder/campaigns"
	"github.com/openbidder/openbidder/ortb"
)

// encode writes the BidResponse for bc.best into bc.out (append only, no
// reflection, no fmt).
func (s *Server) encode(bc *bidCtx, cat *catalog) {
	seq := s.seq.Add(1)
	b := append(bc.out[:0], `{"id":`...)
	b = ortb.AppendJSONString(b, bc.req.ID)
	b = append(b, `,"bidid":"`...)
	b = append(b, s.idPrefix...)
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, `","cur":"`...)
	b = append(b, bc.resp...)
	b = append(b, `","seatbid":[{"seat":`...)
	b = append(b, bc.ex.seatJSON...)
	b = append(b, `,"bid":[`...)
	n := 0
	for i := range bc.best {
		c := &bc.best[i]
		if c.slot < 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = s.appendBid(b, bc, cat, c, seq)
	}
	bc.out = append(b, "]}]}"...)
}

func (s *Server) appendBid(b []byte, bc *bidCtx, cat *catalog, c *choice, seq uint64) []byte {
	sl := &bc.slots[c.slot]
	imp := &bc.req.Imps[sl.imp]
	cr := sl.cand.Creative
	b = append(b, `{"id":"`...)
	b = append(b, s.idPrefix...)
	b = strconv.AppendUint(b, seq, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(sl.imp), 10)
	b = append(b, `","impid":`...)
	b = ortb.AppendJSONString(b, imp.ID)
	b = append(b, `,"price":`...)
	b = appendMicros(b, c.price)
	b = append(b, cat.frag[cr.Index]...)
	if w, h := sl.cand.W, sl.cand.H; w > 0 && h > 0 {
		b = append(b, `,"w":`...)
		b = strconv.AppendInt(b, w, 10)
		b = append(b, `,"h":`...)
		b = strconv.AppendInt(b, h, 10)
	}
	if d := sl.cand.Deal; d != nil {
		b = append(b, `,"dealid":`...)
		b = ortb.AppendJSONString(b, d.ID)
	}
	bc.tok = s.appendTokens(bc.tok[:0], bc, cat, c)
	bc.learn = bc.appendLearnArg(bc.learn[:0]) // first-price shading feedback (shade.go); empty otherwise
	b = s.appendNoticeURL(b, bc.ex, `,"nurl":"`, pathWin, bc.tokenOf(noticeWin), bc.learn)
	b = s.appendNoticeURL(b, bc.ex, `,"burl":"`, pathBill, bc.tokenOf(noticeBill), bc.learn)
	b = s.appendNoticeURL(b, bc.ex, `,"lurl":"`, pathLoss, bc.tokenOf(noticeLoss), bc.learn)
	bc.click = s.appendTrackerURL(bc.click[:0], pathClick, bc.tokenOf(noticeClick))
	bc.pixel = s.appendTrackerURL(bc.pixel[:0], pathImp, bc.tokenOf(noticeImp))
	b = append(b, `,"adm":"`...)
	if cr.Format == campaigns.FormatNative {
		// The request's asset ids, only the assets the creative fills.
		b = campaigns.AppendNative(b, cr, &imp.Native, bc.click, bc.pixel)
	} else {
		b = campaigns.AppendAdm(b, cr, bc.click, bc.pixel)
	}
	b = append(b, '"')
	ext := `,"ext":{`
	if bc.ex.pctr { // pricing.reveal_pctr: off by default, it tells the exchange the value
		b = append(b, ext...)
		b = append(b, `"pctr":`...)
		b = strconv.AppendFloat(b, float64(bc.pctr[c.slot]), 'g', 6, 32)
		ext = ","
	}
	if d := sl.cand.Campaign.DSA; d != nil && bc.req.Regs.DSARequired >= 1 && bc.req.Regs.DSAPubRender != 0 {
		// DSA transparency where the request supports it (dsarequired 1)
		// or requires it (2, 3: the match refused campaigns without it);
		// not where the publisher cannot render it (pubrender 0): with
		// adrender 0 nobody would, a pair an exchange may drop the bid for,
		// and dsarequired 1 lets a bid go without.
		b = append(b, ext...)
		b = append(b, d.JSON...)
		ext = ","
	}
	if ext == "," {
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendMicros writes micros as a decimal number: 2500000 -> 2.5.
func appendMicros(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/1e6, 10)
	frac := v % 1e6
	if frac == 0 {
		return b
	}
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for n > 0 && d[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, d[:n]...)
}
