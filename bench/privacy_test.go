package bench

import (
	"sync"

	"github.com/openbidder/openbidder/ortb"
	"github.com/openbidder/openbidder/privacy"
)

// defaultPolicy decides as a bidder with the default privacy config
// (vendor_id 0) does.
var defaultPolicy = sync.OnceValue(func() *privacy.Policy {
	p, err := privacy.New(privacy.Options{})
	if err != nil {
		panic(err)
	}
	return p
})

// personalize is the user-level argument of features.ExtractImp for req, as
// the bidder computes it.
func personalize(req *ortb.Request) bool {
	return defaultPolicy().Decide(req).Allows(privacy.Personalize)
}
