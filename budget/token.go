package budget

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"math"
	"sync"
	"time"
)

// Use is the one endpoint a notice token is valid at. A bid carries five
// tokens over the same signed payload, one per use; each is accepted only by
// its own endpoint, so the impression pixel that every browser sees in the
// markup cannot be replayed as a billing or a loss notice.
type Use uint8

// Uses of a notice token.
const (
	UseWin   Use = iota + 1 // nurl
	UseBill                 // burl
	UseLoss                 // lurl
	UseImp                  // impression pixel in the markup
	UseClick                // click redirect in the markup
	numUses
)

var useNames = [...]string{"", "win", "bill", "loss", "imp", "click"}

func (u Use) String() string {
	if int(u) < len(useNames) {
		return useNames[u]
	}
	return "invalid"
}

// Token is what a signed notice URL carries. Its expiry (default NoticeTTL,
// 24h) is much longer than a hold (HoldTTL, 2m): a notice after its hold
// expired but before its token expired is charged and counted late (a win or
// billing notice only within the longest de-duplication window of its bid,
// Manager.tooLateToCharge); after the token expired it is refused (403) and
// changes nothing.
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
	// FloorMicros is the imp's floor in the same unit as PriceMicros: a
	// reported price under it is charged at the floor.
	FloorMicros int64
	// UserKey is the frequency-cap key of the user (0 unknown).
	UserKey uint64
	// PCTR is the bidder's predicted click-through rate at bid time; not
	// money, carried so impressions and clicks can be checked against it.
	PCTR float32
	// ChargeOn is the exchange's charging notice (KindWin or KindBill; zero
	// means the bidder's default), so a notice settles by the rule of the
	// exchange the bid went to.
	ChargeOn NoticeKind
	// Test marks a bid made for a test-mode request (OpenRTB test=1: not
	// billable): its notices are answered and never charge. Carried in the
	// charge-on byte's top bit.
	Test    bool
	Expires time.Time // second resolution
	// Issued is when the bid was made (second resolution, not after
	// Expires; zero: unknown, as in a version 5 token), so how long after
	// its bid a notice comes does not hang on notices.token_ttl staying
	// what it was when the token was minted (Notice.Bid).
	Issued time.Time
}

// Token text: base64url(payload) "." base64url(tag), where payload is the
// versioned binary encoding of a Token and tag is the first 16 bytes of
// SHA-256(master || use), master = HMAC-SHA256(key, payload). The payload is
// signed once per bid; each use costs one more SHA-256 block. master never
// leaves the process, so a tag for one use says nothing about another's.
//
// The payload is signed, not secret: the pixel and click URLs sit in the ad
// markup, which the page (header bidding runs in it), the app's SDK and
// every script there can read. So the user's frequency-cap key (a hash of
// user.id, buyeruid or the device's advertising id, the same on every site)
// is sealed: one AES-128 block of (user key, hold id) under a key derived
// from the notice key, different for every bid of the same user. The
// predicted CTR is masked too (XOR with an AES block of the hold id under
// that key, pctrPad): beside the price it gives away a CPC campaign's value
// per click, which is why bids carry no ext.pctr unless
// pricing.reveal_pctr says so, and in clear here every exchange read it in
// the nurl of every bid anyway (an outside notices audit).
//
// Version 8 masks the predicted CTR; version 7 added the token's lifetime
// (Expires - Issued, seconds) and sealed the user key. Version 7 tokens
// (the pCTR in clear) and version 5 tokens (Issued zero) still parse.
// (Version 6 was never released.)
const (
	tokenVersion = 8
	tokenV7      = 7
	tokenV5      = 5
	tokenFixed   = 65                     // expires, bid, hold, price, floor: five uint64s; sealed user: 16 bytes; pctr: float32 bits; charge-on: one byte; lifetime: uint32
	tokenFixedV5 = 53                     // version 5: user in clear (a uint64), no lifetime
	tokenTagLen  = 16                     // per-use tag, 128 bits
	maxTokenRaw  = 1 + tokenFixed + 5*256 // largest payload: five strings of at most 255 bytes (MaxTokenID)
	tokenSep     = '.'
	userAt       = 41 // offset of the user field, both versions
)

// tokenEnc is strict: the unused low bits of a token's last character must be
// zero, so a token has one spelling. Lenient, each notice URL had 16
// accepted spellings (an outside audit): the bidder's own de-dup keys on the
// token's content and held, but a cache or an exchange's retry logic keyed
// on the URL would not.
var tokenEnc = base64.RawURLEncoding.Strict()

// MaxTokenID is the longest auction, imp, campaign, creative or instance id
// a token carries, in bytes; a longer one is cut to it. Notices are
// de-duplicated by the (auction, imp) the token carries (and its bid's
// instance and hold), so a bid whose auction or imp id is longer must not be
// placed (two ids alike in their first MaxTokenID bytes would share one
// impression's charge).
const MaxTokenID = 255

// ErrNoKey is returned by NewSigner without a usable key.
var ErrNoKey = errors.New("budget: no notice key")

// Signer signs notice tokens with its first key and verifies them with any of
// its keys (the current one first, then previous ones kept for rotation).
// Safe for concurrent use; signing and verifying make no allocation.
type Signer struct {
	keys  []*macPool
	users []cipher.Block // per key: seals the user key (userKeyCipher)
}

// userKeyCipher is the AES-128 block that seals a token's user key, its key
// derived from the notice key (SHA-256 of a label and the key), so it is
// never the HMAC key itself.
func userKeyCipher(key []byte) cipher.Block {
	k := sha256.Sum256(append([]byte("openbidder notice token user key\x00"), key...))
	b, err := aes.NewCipher(k[:16])
	if err != nil {
		panic("budget: AES-128 refused a 16-byte key: " + err.Error())
	}
	return b
}

// macPool keeps HMAC-SHA256 states for one key: crypto/hmac allocates in New,
// so states are pooled and Reset (which restores the precomputed key blocks).
type macPool struct{ p sync.Pool }

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newMacPool(key []byte) *macPool {
	k := append([]byte(nil), key...)
	mp := &macPool{}
	mp.p.New = func() any { return &macState{h: hmac.New(sha256.New, k)} }
	return mp
}

// master computes HMAC-SHA256(key, payload).
func (mp *macPool) master(payload []byte) [sha256.Size]byte {
	s := mp.p.Get().(*macState)
	s.h.Reset()
	s.h.Write(payload)
	s.h.Sum(s.sum[:0])
	out := s.sum
	mp.p.Put(s)
	return out
}

// NewSigner returns a Signer that signs with keys[0] and verifies with any
// key. Empty keys are refused.
func NewSigner(keys ...[]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	s := &Signer{}
	for _, k := range keys {
		if len(k) == 0 {
			return nil, ErrNoKey
		}
		s.keys = append(s.keys, newMacPool(k))
		s.users = append(s.users, userKeyCipher(k))
	}
	return s, nil
}

// Sealed is one bid's signed payload, from which the token of each use is
// appended. Reuse it across bids (Seal overwrites it); it never allocates
// once its buffer has grown.
type Sealed struct {
	text   []byte // base64url(payload)
	master [sha256.Size]byte
	raw    [maxTokenRaw]byte
}

// Seal signs t's payload into sd with the signer's current key.
func (s *Signer) Seal(sd *Sealed, t *Token) {
	p := encodePayload(sd.raw[:0], t, s.users[0])
	sd.master = s.keys[0].master(p)
	sd.text = tokenEnc.AppendEncode(sd.text[:0], p)
}

// AppendFor appends the token valid at use u to dst.
func (sd *Sealed) AppendFor(dst []byte, u Use) []byte {
	tag := useTag(&sd.master, u)
	dst = append(dst, sd.text...)
	dst = append(dst, tokenSep)
	return tokenEnc.AppendEncode(dst, tag[:tokenTagLen])
}

func useTag(master *[sha256.Size]byte, u Use) [sha256.Size]byte {
	var in [sha256.Size + 1]byte
	copy(in[:], master[:])
	in[sha256.Size] = byte(u)
	return sha256.Sum256(in[:])
}

// encodePayload appends t's payload, its user key sealed with blk.
func encodePayload(dst []byte, t *Token, blk cipher.Block) []byte {
	dst = append(dst, tokenVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Expires.Unix()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.BidMicros))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.HoldID))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.PriceMicros))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.FloorMicros))
	dst = binary.BigEndian.AppendUint64(dst, t.UserKey)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.HoldID))
	u := dst[len(dst)-16:]
	blk.Encrypt(u, u)
	dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(t.PCTR)^pctrPad(dst, blk, t.HoldID))
	cb := byte(t.ChargeOn) & 0x7f
	if t.Test {
		cb |= 0x80
	}
	dst = append(dst, cb)
	dst = binary.BigEndian.AppendUint32(dst, lifetime(t))
	for _, s := range [...]string{t.AuctionID, t.ImpID, t.CampaignID, t.CreativeID, t.InstanceID} {
		if len(s) > MaxTokenID {
			s = s[:MaxTokenID]
		}
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// pctrLabel tells the pCTR's pad block from the user key's: (hold id,
// label) against (user key, hold id).
const pctrLabel = "pctr\x00pad"

// pctrPad is the mask of a token's predicted CTR: the first 4 bytes of the
// AES block of (hold id, pctrLabel) under blk, computed in dst's spare
// capacity (dst itself is left as it was).
func pctrPad(dst []byte, blk cipher.Block, hold HoldID) uint32 {
	n := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(hold))
	dst = append(dst, pctrLabel...)
	p := dst[n : n+16]
	blk.Encrypt(p, p)
	return binary.BigEndian.Uint32(p)
}

// lifetime is Expires - Issued in whole seconds, 0 when unknown (Issued
// zero, not before Expires, or too long ago to say in 32 bits).
func lifetime(t *Token) uint32 {
	d := t.Expires.Unix() - t.Issued.Unix()
	if t.Issued.IsZero() || d <= 0 || d > math.MaxUint32 {
		return 0
	}
	return uint32(d)
}

// MaxBinding is the most bytes AppendBinding binds to a token.
const MaxBinding = 31

// bindMark separates a binding's tag from the use tags: useTag hashes
// master || use (1-5), a binding master || bindMark || data.
const bindMark = 0x80

// AppendBinding appends the tag that binds data (at most MaxBinding bytes;
// more is cut) to this bid's tokens, base64url, to dst: for data a notice
// URL carries beside its token, outside the signed payload, that must not be
// changed or moved to another bid's notice (ParseBound checks it). The tag is
// SHA-256(master || 0x80 || data), cut to 128 bits, the same for every use.
func (sd *Sealed) AppendBinding(dst, data []byte) []byte {
	tag := bindTag(&sd.master, data)
	return tokenEnc.AppendEncode(dst, tag[:tokenTagLen])
}

func bindTag(master *[sha256.Size]byte, data []byte) [sha256.Size]byte {
	var in [sha256.Size + 1 + MaxBinding]byte
	copy(in[:], master[:])
	in[sha256.Size] = bindMark
	n := copy(in[sha256.Size+1:], data)
	return sha256.Sum256(in[:sha256.Size+1+n])
}

// Parse verifies a token presented at use u and decodes it. A malformed
// token, a wrong signature, or a token minted for another use is ErrForged;
// a valid one past its expiry is ErrExpired (with the decoded token).
func (s *Signer) Parse(src []byte, u Use, now time.Time) (Token, error) {
	t, _, err := s.parse(src, u, now)
	return t, err
}

// ParseBound is Parse that also says whether tag (AppendBinding's text)
// binds data to this token. bound is false for a token Parse refuses as
// forged, and for a tag that is missing, malformed, or made for other data
// or another bid.
func (s *Signer) ParseBound(src []byte, u Use, now time.Time, data, tag []byte) (t Token, bound bool, err error) {
	t, master, err := s.parse(src, u, now)
	if err != nil && !errors.Is(err, ErrExpired) {
		return t, false, err
	}
	var got [tokenTagLen]byte
	if len(data) > MaxBinding || tokenEnc.DecodedLen(len(tag)) != tokenTagLen {
		return t, false, err
	}
	if m, derr := tokenEnc.Decode(got[:], tag); derr != nil || m != tokenTagLen {
		return t, false, err
	}
	want := bindTag(&master, data)
	return t, subtle.ConstantTimeCompare(want[:tokenTagLen], got[:]) == 1, err
}

// parse is Parse, also returning the master of the key that signed it.
func (s *Signer) parse(src []byte, u Use, now time.Time) (Token, [sha256.Size]byte, error) {
	var none [sha256.Size]byte
	sep := -1
	for i := len(src) - 1; i >= 0; i-- {
		if src[i] == tokenSep {
			sep = i
			break
		}
	}
	if sep <= 0 || u == 0 || u >= numUses || tokenEnc.DecodedLen(sep) > maxTokenRaw ||
		tokenEnc.DecodedLen(len(src)-sep-1) != tokenTagLen {
		return Token{}, none, ErrForged
	}
	var raw [maxTokenRaw]byte
	n, err := tokenEnc.Decode(raw[:], src[:sep])
	if err != nil || n < 1+tokenFixedV5+5 {
		return Token{}, none, ErrForged
	}
	var tag [tokenTagLen]byte
	if m, err := tokenEnc.Decode(tag[:], src[sep+1:]); err != nil || m != tokenTagLen {
		return Token{}, none, ErrForged
	}
	match := -1
	var matched [sha256.Size]byte
	for i, k := range s.keys {
		master := k.master(raw[:n])
		want := useTag(&master, u)
		if subtle.ConstantTimeCompare(want[:tokenTagLen], tag[:]) == 1 {
			match, matched = i, master
		}
	}
	if match < 0 {
		return Token{}, none, ErrForged
	}
	t, good := decodePayload(raw[:n], s.users[match])
	if !good {
		return Token{}, none, ErrForged
	}
	if !now.Before(t.Expires) {
		return t, matched, ErrExpired
	}
	return t, matched, nil
}

// decodePayload decodes a verified payload, opening its user key with blk
// (the cipher of the key that signed it).
func decodePayload(b []byte, blk cipher.Block) (Token, bool) {
	fixed := tokenFixed
	if len(b) > 0 && b[0] == tokenV5 {
		fixed = tokenFixedV5
	}
	if len(b) < 1+fixed || (b[0] != tokenVersion && b[0] != tokenV7 && b[0] != tokenV5) {
		return Token{}, false
	}
	var t Token
	exp := int64(binary.BigEndian.Uint64(b[1:]))
	t.Expires = time.Unix(exp, 0).UTC()
	t.BidMicros = int64(binary.BigEndian.Uint64(b[9:]))
	t.HoldID = HoldID(binary.BigEndian.Uint64(b[17:]))
	t.PriceMicros = int64(binary.BigEndian.Uint64(b[25:]))
	t.FloorMicros = int64(binary.BigEndian.Uint64(b[33:]))
	at := userAt + 8 // past the user field
	if fixed == tokenFixedV5 {
		t.UserKey = binary.BigEndian.Uint64(b[userAt:])
	} else {
		var u [16]byte
		blk.Decrypt(u[:], b[userAt:userAt+16])
		if HoldID(binary.BigEndian.Uint64(u[8:])) != t.HoldID {
			return Token{}, false
		}
		t.UserKey, at = binary.BigEndian.Uint64(u[:]), userAt+16
	}
	pc := binary.BigEndian.Uint32(b[at:])
	if b[0] == tokenVersion {
		var scratch [16]byte
		pc ^= pctrPad(scratch[:0], blk, t.HoldID)
	}
	t.PCTR = math.Float32frombits(pc)
	t.ChargeOn, t.Test = NoticeKind(b[at+4]&0x7f), b[at+4]&0x80 != 0
	if fixed == tokenFixed {
		if iss := exp - int64(binary.BigEndian.Uint32(b[at+5:])); iss < exp {
			t.Issued = time.Unix(iss, 0).UTC()
		}
	}
	b = b[1+fixed:]
	for _, f := range [...]*string{&t.AuctionID, &t.ImpID, &t.CampaignID, &t.CreativeID, &t.InstanceID} {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return Token{}, false
		}
		*f = string(b[1 : 1+int(b[0])])
		b = b[1+int(b[0]):]
	}
	return t, len(b) == 0
}

// AppendToken appends the token of t valid at use u, signed with key, to dst.
// For tests and tools; the bid path seals once and appends each use.
func AppendToken(dst []byte, key []byte, t Token, u Use) []byte {
	s, err := NewSigner(key)
	if err != nil {
		return dst
	}
	var sd Sealed
	s.Seal(&sd, &t)
	return sd.AppendFor(dst, u)
}

// ParseToken verifies a token presented at use u with key.
func ParseToken(src []byte, key []byte, u Use, now time.Time) (Token, error) {
	s, err := NewSigner(key)
	if err != nil {
		return Token{}, ErrForged
	}
	return s.Parse(src, u, now)
}
