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
	r.User.BuyerUID = []byte("b-1")
	buyer := r.UserKey()
	r.User.ID = []byte("u-1")
	if id := r.UserKey(); id == 0 || id == buyer || buyer == ifa {
		t.Fatalf("user.id %x, buyeruid %x, ifa %x: want distinct non-zero keys, user.id first", id, buyer, ifa)
	}
}
