package ortb

import "testing"

func TestUserKey(t *testing.T) {
	var r Request
	r.Reset()
	if r.UserKey() != 0 {
		t.Fatal("no id: want 0")
	}
	r.Device.IFA = []byte("ifa-1")
	ifa := r.UserKey()
	if ifa == 0 {
		t.Fatal("ifa ignored")
	}
	r.Device.LMT = True
	if r.UserKey() != 0 {
		t.Fatal("limit ad tracking: the ifa must not identify the user")
	}
	r.Device.LMT = False
	r.Device.IFA = []byte("00000000-0000-0000-0000-000000000000")
	if r.UserKey() != 0 {
		t.Fatal("an all-zero ifa (tracking not allowed) made every such device one user")
	}
	r.Device.IFA = []byte("ifa-1")
	r.User.ID = []byte("u-1")
	id := r.UserKey()
	r.User.BuyerUID = []byte("b-1")
	buyer := r.UserKey()
	if id == 0 || buyer == 0 || id == buyer || buyer == ifa || id == ifa {
		t.Fatalf("user.id %x, buyeruid %x, ifa %x: want distinct non-zero keys", id, buyer, ifa)
	}
	r.User.ID = []byte("u-2") // the same person on another exchange
	if r.UserKey() != buyer {
		t.Fatal("the exchange's user.id was keyed before this buyer's buyeruid: one person, a cap per exchange")
	}
}

// One id written in different forms keys one user: an advertising id in
// either letter case or without its dashes (IDFA is upper case, exchanges
// lower-case it or not), and any id with spaces around it; an id of spaces
// only, or an all-zero ifa with a space, is no id. An outside audit got 4
// impressions under a cap of 2 by sending the same ifa in upper and lower
// case (or a buyeruid with a trailing space). The usual form (lower case,
// dashes) keys what it keyed before: FNV-1a of its bytes, so the counts of
// such ids carry over an upgrade (a review: the first fix dropped the
// dashes, and every ifa user's count started over, twice the cap across
// a rolling deploy).
func TestUserKeyIDForms(t *testing.T) {
	key := func(buyer, id, ifa string) uint64 {
		var r Request
		r.Reset()
		r.User.BuyerUID, r.User.ID, r.Device.IFA = []byte(buyer), []byte(id), []byte(ifa)
		return r.UserKey()
	}
	const ifa = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
	want := key("", "", ifa)
	fnv := uint64(14695981039346656037)
	for _, c := range []byte(ifa) {
		fnv = (fnv ^ uint64(c)) * 1099511628211
	}
	if want != fnv {
		t.Fatalf("the usual ifa form keyed %x, want FNV-1a of its bytes %x (the key before)", want, fnv)
	}
	if key("", "", "6d92078a8246-4ba4-ae5b-76104861e7dc") == want || key("", "", "6d92078a-8246-4ba4-ae5b-76104861e7d") == want {
		t.Error("an ifa with one dash left out, or a digit short, keyed the same user")
	}
	for _, f := range []string{"6D92078A-8246-4BA4-AE5B-76104861E7DC", "6d92078a82464ba4ae5b76104861e7dc", " " + ifa + "\t"} {
		if got := key("", "", f); got != want {
			t.Errorf("ifa %q keyed %x, %q %x: want one user", f, got, ifa, want)
		}
	}
	if key("b-1 ", "", "") != key("b-1", "", "") || key("", " u-1", "") != key("", "u-1", "") {
		t.Error("an id with spaces around it keyed another user")
	}
	if key("B-1", "", "") == key("b-1", "", "") {
		t.Error("buyeruid is opaque: its letter case must not be folded")
	}
	if key(" ", "", "") != 0 || key("", "\t", "") != 0 || key("", "", "00000000-0000-0000-0000-000000000000 ") != 0 {
		t.Error("an id of spaces only, or a zero ifa with a space, keyed a user (every such request one user)")
	}
	if key(" ", "u-1", "") != key("", "u-1", "") {
		t.Error("a buyeruid of spaces hid user.id")
	}
}
