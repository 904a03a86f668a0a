package budget

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func sampleToken() Token {
	return Token{AuctionID: "auc-1", ImpID: "1", CampaignID: "camp", CreativeID: "cr", InstanceID: "i1",
		BidMicros: 1_500_000, HoldID: 42<<32 | 7, PriceMicros: 1_600_000, UserKey: 0xdeadbeef, PCTR: 0.0123, FloorMicros: 500_000, ChargeOn: KindWin, Expires: t0.Add(24 * time.Hour), Issued: t0}
}

func TestTokenRoundTrip(t *testing.T) {
	tok := sampleToken()
	s := AppendToken([]byte("prefix="), testKey, tok, UseBill)
	if !bytes.HasPrefix(s, []byte("prefix=")) {
		t.Fatalf("prefix lost: %q", s)
	}
	raw := s[len("prefix="):]
	for _, c := range raw {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			t.Fatalf("not URL-safe: %q", raw)
		}
	}
	got, err := ParseToken(raw, testKey, UseBill, t0)
	if err != nil || got != tok {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, test := range []bool{true, false} { // the test-mode bit beside each charge-on value
		for _, on := range []NoticeKind{0, KindWin, KindBill} {
			tt := tok
			tt.Test, tt.ChargeOn = test, on
			if got, err := ParseToken(AppendToken(nil, testKey, tt, UseWin), testKey, UseWin, t0); err != nil || got != tt {
				t.Fatalf("test %v, charge-on %v: got %+v, %v", test, on, got, err)
			}
		}
	}
	if _, err := ParseToken(raw, testKey, UseBill, tok.Expires); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := ParseToken(raw, []byte("other key"), UseBill, t0); !errors.Is(err, ErrForged) {
		t.Fatalf("wrong key: %v", err)
	}
	// The lowest bit of each part's last character (unused where the part's
	// length leaves bits over): a lenient decoder read "...QJR" as "...QJQ",
	// 16 spellings of each token (an outside audit).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, at := range []int{len(raw) - 1, bytes.IndexByte(raw, '.') - 1} {
		bad := bytes.Clone(raw)
		bad[at] = alphabet[strings.IndexByte(alphabet, bad[at])^1]
		if _, err := ParseToken(bad, testKey, UseBill, t0); err == nil {
			t.Fatalf("%q (its character %d's lowest bit flipped) accepted", bad, at)
		}
	}
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if _, err := ParseToken(bad, testKey, UseBill, t0); err == nil {
			// A flipped unused bit of the last character too: a token
			// has one spelling (strict base64; an outside audit found 16).
			t.Fatalf("tampered byte %d accepted", i)
		}
	}
	long := strings.Repeat("x", 64*3)
	for _, g := range []string{long, long + "." + long, "." + long, long + ".", "AAAA.AAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := ParseToken([]byte(g), testKey, UseBill, t0); !errors.Is(err, ErrForged) {
			t.Fatalf("garbage %q: %v", g, err)
		}
	}
}

// A token says when its bid was made (Issued), whatever its lifetime, and
// says nothing of it where it cannot (no Issued, or one not before Expires).
// A version 5 token, minted before tokens carried it, still parses, with
// Issued zero.
func TestTokenIssued(t *testing.T) {
	for _, c := range []struct {
		issued, want time.Time
	}{
		{t0, t0},
		{t0.Add(23*time.Hour + 500*time.Millisecond), t0.Add(23 * time.Hour)}, // whole seconds
		{time.Time{}, time.Time{}},
		{t0.Add(24 * time.Hour), time.Time{}},
		{t0.Add(25 * time.Hour), time.Time{}},
	} {
		tok := sampleToken()
		tok.Issued = c.issued
		got, err := ParseToken(AppendToken(nil, testKey, tok, UseBill), testKey, UseBill, t0)
		if err != nil || !got.Issued.Equal(c.want) || got.Issued.IsZero() != c.want.IsZero() {
			t.Errorf("issued %v: got %v %v, want %v", c.issued, got.Issued, err, c.want)
		}
	}
	tok := sampleToken()
	v7 := encodePayload(nil, &tok, userKeyCipher(testKey))
	v5 := append([]byte{tokenV5}, v7[1:userAt]...) // expires .. floor
	v5 = binary.BigEndian.AppendUint64(v5, tok.UserKey)
	v5 = binary.BigEndian.AppendUint32(v5, math.Float32bits(tok.PCTR)) // in clear
	v5 = append(v5, v7[userAt+20])                                     // charge-on
	v5 = append(v5, v7[1+tokenFixed:]...)                              // the ids
	h := hmac.New(sha256.New, testKey)
	h.Write(v5)
	tag := sha256.Sum256(append(h.Sum(nil), byte(UseBill)))
	raw := tokenEnc.EncodeToString(v5) + "." + tokenEnc.EncodeToString(tag[:tokenTagLen])
	got, err := ParseToken([]byte(raw), testKey, UseBill, t0)
	want := tok
	want.Issued = time.Time{}
	if err != nil || got != want {
		t.Fatalf("version 5 token: %+v %v, want %+v", got, err, want)
	}
}

// The user key, which every page that shows the ad can read in the pixel
// and click URLs, is not in a token's payload in clear, and two bids for one
// user do not carry the same bytes for it; a key of a rotated signer opens
// it all the same.
func TestTokenSealsUserKey(t *testing.T) {
	payload := func(tok []byte) []byte {
		b, err := tokenEnc.DecodeString(string(tok[:bytes.IndexByte(tok, tokenSep)]))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := sampleToken(), sampleToken()
	b.HoldID++
	pa, pb := payload(AppendToken(nil, testKey, a, UseImp)), payload(AppendToken(nil, testKey, b, UseImp))
	if user := binary.BigEndian.AppendUint64(nil, a.UserKey); bytes.Contains(pa, user) || bytes.Contains(pb, user) {
		t.Fatalf("user key %x in clear in the payload", user)
	}
	if bytes.Equal(pa[userAt:userAt+16], pb[userAt:userAt+16]) {
		t.Fatal("two bids for one user carry the same sealed user key")
	}
	oldKey := []byte("old key")
	rotated, _ := NewSigner([]byte("new key"), oldKey)
	got, err := rotated.Parse(AppendToken(nil, oldKey, a, UseImp), UseImp, t0)
	if err != nil || got.UserKey != a.UserKey {
		t.Fatalf("a token of the previous key: user %x, %v; want %x", got.UserKey, err, a.UserKey)
	}
}

// The predicted CTR, which beside the price gives away a CPC campaign's
// value per click, is not in a token's payload in clear (every exchange
// reads its nurl, every page its pixel: bids carry no ext.pctr unless
// pricing.reveal_pctr says so, and the token gave it away anyway), and two
// bids with the same pCTR do not carry the same bytes for it. A version 7
// token, the pCTR in clear, still parses.
func TestTokenMasksPCTR(t *testing.T) {
	payload := func(tok []byte) []byte {
		b, err := tokenEnc.DecodeString(string(tok[:bytes.IndexByte(tok, tokenSep)]))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := sampleToken(), sampleToken()
	b.HoldID++
	pa, pb := payload(AppendToken(nil, testKey, a, UseBill)), payload(AppendToken(nil, testKey, b, UseBill))
	clear := binary.BigEndian.AppendUint32(nil, math.Float32bits(a.PCTR))
	if bytes.Contains(pa, clear) || bytes.Contains(pb, clear) {
		t.Fatalf("pCTR %v (%x) in clear in the payload", a.PCTR, clear)
	}
	if bytes.Equal(pa[userAt+16:userAt+20], pb[userAt+16:userAt+20]) {
		t.Fatal("two bids with one pCTR carry the same bytes for it")
	}
	for _, s := range []*Signer{mustSigner(t, testKey), mustSigner(t, []byte("new key"), testKey)} {
		if got, err := s.Parse(AppendToken(nil, testKey, a, UseBill), UseBill, t0); err != nil || got != a {
			t.Fatalf("round trip: %+v %v, want %+v", got, err, a)
		}
	}
	v7 := encodePayload(nil, &a, userKeyCipher(testKey))
	v7[0] = tokenV7
	binary.BigEndian.PutUint32(v7[userAt+16:], math.Float32bits(a.PCTR))
	h := hmac.New(sha256.New, testKey)
	h.Write(v7)
	tag := sha256.Sum256(append(h.Sum(nil), byte(UseBill)))
	raw := tokenEnc.EncodeToString(v7) + "." + tokenEnc.EncodeToString(tag[:tokenTagLen])
	if got, err := ParseToken([]byte(raw), testKey, UseBill, t0); err != nil || got != a {
		t.Fatalf("version 7 token: %+v %v, want %+v", got, err, a)
	}
}

func mustSigner(t *testing.T, keys ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A token is valid at the use it was minted for and nowhere else: every
// cross-use is ErrForged.
func TestTokenBoundToUse(t *testing.T) {
	s, err := NewSigner(testKey)
	if err != nil {
		t.Fatal(err)
	}
	tok := sampleToken()
	var sd Sealed
	s.Seal(&sd, &tok)
	for minted := UseWin; minted < numUses; minted++ {
		raw := sd.AppendFor(nil, minted)
		for used := UseWin; used < numUses; used++ {
			got, err := s.Parse(raw, used, t0)
			switch {
			case used == minted && (err != nil || got != tok):
				t.Errorf("%v token at %v: %+v %v", minted, used, got, err)
			case used != minted && !errors.Is(err, ErrForged):
				t.Errorf("%v token accepted at %v: %v", minted, used, err)
			}
		}
		if _, err := s.Parse(raw, 0, t0); !errors.Is(err, ErrForged) {
			t.Errorf("use 0 accepted: %v", err)
		}
		if _, err := s.Parse(raw, numUses, t0); !errors.Is(err, ErrForged) {
			t.Errorf("use %d accepted: %v", numUses, err)
		}
	}
}

// Rotation: a signer signs with its first key and verifies with any; a
// signer that dropped the old key refuses its tokens.
func TestTokenKeyRotation(t *testing.T) {
	oldKey, newKey := []byte("old key"), []byte("new key")
	old := AppendToken(nil, oldKey, sampleToken(), UseWin)
	both, err := NewSigner(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := both.Parse(old, UseWin, t0); err != nil {
		t.Fatalf("old token with rotated keys: %v", err)
	}
	var sd Sealed
	tok := sampleToken()
	both.Seal(&sd, &tok)
	fresh := sd.AppendFor(nil, UseWin)
	if _, err := ParseToken(fresh, newKey, UseWin, t0); err != nil {
		t.Fatalf("new tokens are signed with the first key: %v", err)
	}
	if _, err := ParseToken(fresh, oldKey, UseWin, t0); !errors.Is(err, ErrForged) {
		t.Fatalf("new token verified by the old key alone: %v", err)
	}
	onlyNew, _ := NewSigner(newKey)
	if _, err := onlyNew.Parse(old, UseWin, t0); !errors.Is(err, ErrForged) {
		t.Fatalf("retired key still accepted: %v", err)
	}
	if _, err := NewSigner(); !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
	if _, err := NewSigner(newKey, nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("empty key: %v", err)
	}
}

// A binding ties data carried beside a token to that bid: changed data, a
// tag moved to another bid's token, or a forged token do not verify; it
// survives key rotation and expiry like the token.
func TestTokenBinding(t *testing.T) {
	oldKey, newKey := []byte("old key"), []byte("new key")
	old, _ := NewSigner(oldKey)
	both, _ := NewSigner(newKey, oldKey)
	data, other := []byte("segment-key-0001"), []byte("segment-key-0002")
	mint := func(s *Signer, tok Token) (token, tag []byte) {
		var sd Sealed
		s.Seal(&sd, &tok)
		return sd.AppendFor(nil, UseWin), sd.AppendBinding(nil, data)
	}
	a := sampleToken()
	b := sampleToken()
	b.AuctionID = "auc-2"
	tokA, tagA := mint(both, a)
	tokB, tagB := mint(both, b)
	tokOld, tagOld := mint(old, a)
	f := func(name string, token, d, tag []byte, now time.Time, want bool, wantErr error) {
		t.Helper()
		got, bound, err := both.ParseBound(token, UseWin, now, d, tag)
		if bound != want || !errors.Is(err, wantErr) || (err == nil && got.AuctionID == "") {
			t.Errorf("%s: bound %v, err %v; want %v, %v", name, bound, err, want, wantErr)
		}
	}
	f("its own", tokA, data, tagA, t0, true, nil)
	f("signed with the previous key", tokOld, data, tagOld, t0, true, nil)
	f("expired", tokA, data, tagA, a.Expires, true, ErrExpired)
	f("other data", tokA, other, tagA, t0, false, nil)
	f("another bid's tag", tokA, data, tagB, t0, false, nil)
	f("its tag on another bid", tokB, data, tagA, t0, false, nil)
	f("no tag", tokA, data, nil, t0, false, nil)
	f("not base64", tokA, data, []byte("!!!!!!!!!!!!!!!!!!!!!!"), t0, false, nil)
	f("too long", tokA, data, append(bytes.Clone(tagA), 'A', 'A'), t0, false, nil)
	bad := bytes.Clone(tokA)
	bad[3] ^= 1
	f("forged token", bad, data, tagA, t0, false, ErrForged)
	if !bytes.Equal(tagA, func() []byte { _, g := mint(both, a); return g }()) {
		t.Errorf("a binding is not a function of the bid and the data")
	}
	if _, g := mint(old, a); bytes.Equal(g, tagA) {
		t.Errorf("two keys made the same binding")
	}
}

// The master MAC is HMAC-SHA256 from crypto/hmac, for short and long keys,
// and a tag is SHA-256(master || use).
func TestTokenMACMatchesCryptoHMAC(t *testing.T) {
	tok := sampleToken()
	for _, key := range [][]byte{[]byte("k"), testKey, bytes.Repeat([]byte("k"), 100)} {
		payload := encodePayload(nil, &tok, userKeyCipher(key))
		raw := AppendToken(nil, key, tok, UseImp)
		h := hmac.New(sha256.New, key)
		h.Write(payload)
		tag := sha256.Sum256(append(h.Sum(nil), byte(UseImp)))
		want := tokenEnc.EncodeToString(payload) + "." + tokenEnc.EncodeToString(tag[:tokenTagLen])
		if string(raw) != want {
			t.Fatalf("key len %d: token %q, want %q", len(key), raw, want)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(AppendToken(nil, testKey, sampleToken(), UseWin), uint8(UseWin))
	f.Add(AppendToken(nil, testKey, sampleToken(), UseImp), uint8(UseBill))
	f.Add([]byte("AAAA.AAAA"), uint8(1))
	f.Add([]byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, u uint8) {
		tok, err := ParseToken(b, testKey, Use(u), t0)
		if err != nil {
			if !errors.Is(err, ErrForged) && !errors.Is(err, ErrExpired) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Anything accepted must re-encode to a token that parses the same.
		again, err := ParseToken(AppendToken(nil, testKey, tok, Use(u)), testKey, Use(u), t0)
		if err != nil || again != tok {
			t.Fatalf("re-encode: %+v %v", again, err)
		}
	})
}
