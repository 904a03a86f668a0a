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
