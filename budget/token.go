package budget

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"math"
	"time"
)

// Token is what a signed notice URL carries. Its expiry (default NoticeTTL,
// 24h) is much longer than a hold (HoldTTL, 2m): a notice after its hold
// expired but before its token expired is charged and counted late; after the
// token expired it is refused (403) and changes nothing.
type Token struct {
	AuctionID  string
	ImpID      string
	CampaignID string
	CreativeID string
	InstanceID string
	BidMicros  int64
	HoldID     HoldID
	// PriceMicros is the bid price as the exchange saw it (CPM micros in the
	// response currency), so a clearing price can be turned into a charge in
	// the campaign currency: charge = BidMicros x clearing / PriceMicros.
	PriceMicros int64
	// UserKey is the frequency-cap key of the user (0 unknown).
	UserKey uint64
	// PCTR is the bidder's predicted click-through rate at bid time; not
	// money, carried so impressions and clicks can be checked against it.
	PCTR float32
	// ChargeOn is the exchange's charging notice (KindWin or KindBill; zero
	// means the bidder's default), so a notice settles by the rule of the
	// exchange the bid went to.
	ChargeOn NoticeKind
	Expires  time.Time // second resolution
}

const (
	tokenVersion = 4
	tokenFixed   = 45  // expires, bid, hold, price, user: five uint64s; pctr: float32 bits; charge-on: one byte
	tokenMACLen  = 16  // HMAC-SHA256 truncated to 128 bits
	maxTokenRaw  = 768 // decoded bytes; longer tokens are refused
)

var tokenEnc = base64.RawURLEncoding

// AppendToken appends the URL-safe token for t, signed with key
// (HMAC-SHA256, truncated to 16 bytes), to dst. It does not allocate when dst
// has room for the token and fields fit (each string at most 255 bytes).
func AppendToken(dst []byte, key []byte, t Token) []byte {
	start := len(dst)
	// Scratch layout at dst[start:]: ipad block (64) | payload | mac (16).
	var kb [64]byte
	hmacKey(&kb, key)
	for i := range kb {
		dst = append(dst, kb[i]^0x36)
	}
	p := len(dst)
	dst = append(dst, tokenVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Expires.Unix()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.BidMicros))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.HoldID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.PriceMicros))
	dst = binary.BigEndian.AppendUint64(dst, t.UserKey)
	dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(t.PCTR))
	dst = append(dst, byte(t.ChargeOn))
	for _, s := range [...]string{t.AuctionID, t.ImpID, t.CampaignID, t.CreativeID, t.InstanceID} {
		if len(s) > 255 {
			s = s[:255]
		}
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
	}
	mac := macOf(&kb, dst[start:])
	dst = append(dst, mac[:tokenMACLen]...)
	end := len(dst)
	dst = tokenEnc.AppendEncode(dst, dst[p:end])
	n := copy(dst[start:], dst[end:])
	return dst[:start+n]
}

func hmacKey(kb *[64]byte, key []byte) {
	*kb = [64]byte{}
	if len(key) > 64 {
		s := sha256.Sum256(key)
		copy(kb[:], s[:])
		return
	}
	copy(kb[:], key)
}

// macOf returns HMAC-SHA256 given the key block and ipad||message.
func macOf(kb *[64]byte, ipadMsg []byte) [32]byte {
	inner := sha256.Sum256(ipadMsg)
	var outer [96]byte
	for i := range kb {
		outer[i] = kb[i] ^ 0x5c
	}
	copy(outer[64:], inner[:])
	return sha256.Sum256(outer[:])
}

// ParseToken verifies and decodes a token. A malformed token or a wrong
// signature is ErrForged; a valid one past its expiry is ErrExpired.
func ParseToken(src []byte, key []byte, now time.Time) (Token, error) {
	if len(src) == 0 || tokenEnc.DecodedLen(len(src)) > maxTokenRaw {
		return Token{}, ErrForged
	}
	var buf [64 + maxTokenRaw]byte
	n, err := tokenEnc.Decode(buf[64:], src)
	if err != nil || n < 1+tokenFixed+5+tokenMACLen {
		return Token{}, ErrForged
	}
	var kb [64]byte
	hmacKey(&kb, key)
	for i := range kb {
		buf[i] = kb[i] ^ 0x36
	}
	body := 64 + n - tokenMACLen
	mac := macOf(&kb, buf[:body])
	if subtle.ConstantTimeCompare(mac[:tokenMACLen], buf[body:64+n]) != 1 {
		return Token{}, ErrForged
	}
	b := buf[64:body]
	if b[0] != tokenVersion {
		return Token{}, ErrForged
	}
	var t Token
	t.Expires = time.Unix(int64(binary.BigEndian.Uint64(b[1:])), 0).UTC()
	t.BidMicros = int64(binary.BigEndian.Uint64(b[9:]))
	t.HoldID = HoldID(binary.BigEndian.Uint64(b[17:]))
	t.PriceMicros = int64(binary.BigEndian.Uint64(b[25:]))
	t.UserKey = binary.BigEndian.Uint64(b[33:])
	t.PCTR = math.Float32frombits(binary.BigEndian.Uint32(b[41:]))
	t.ChargeOn = NoticeKind(b[45])
	b = b[1+tokenFixed:]
	for _, f := range [...]*string{&t.AuctionID, &t.ImpID, &t.CampaignID, &t.CreativeID, &t.InstanceID} {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return Token{}, ErrForged
		}
		*f = string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
	}
	if len(b) != 0 {
		return Token{}, ErrForged
	}
	if !now.Before(t.Expires) {
		return t, ErrExpired
	}
	return t, nil
}
