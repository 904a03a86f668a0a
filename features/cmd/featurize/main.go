// Command featurize turns simulator training logs into feature rows with the
// serving feature path, so training and serving cannot disagree:
// ortb.Parser parses the logged request, features.ExtractImp fills the imp
// slots (user-level slots only when the request allows personalization, as
// package privacy decides it for a bidder with privacy.vendor_id -vendor-id),
// and features.NewAd/AppendRow add the shown ad.
//
//	featurize -log DIR[,DIR...] -out OUT [-campaigns configs/campaigns] [-max-rows N] [-seed N] [-vendor-id N]
//
// Input: DIR/impressions.jsonl written by `simulator run -log DIR` (a file
// path works too). Output, in -out: rows.f32, little-endian float32 records of
// features.Width + 2 values (features..., click label, ground-truth
// probability), the layout ctr/train's scripts read, rows.json
// describing it, and rows.keys (request id, imp id, user.id per record, tab
// separated: evaluation only, to join records back to the log). The probability comes from the log's eval.true_ctr: it is
// for evaluation only and is never a feature.
//
// Row order does not follow the log: rows are sorted by a hash of the request
// id (then request id, imp id), a fixed pseudo-random order, so the same
// impressions always give the same bytes and any suffix (the held-out part
// the training scripts take) is a random sample over the whole simulated
// period rather than its last hours.
//
// The ad: the bid time is the log's ts (simulated seconds). When -campaigns
// names the campaign directory and the logged cid is one of its campaigns,
// the ad slots are exactly the serving ones: features.NewAd(campaign id,
// creative id, campaign advertiser, creative mtype, first size). Otherwise
// (the simulator's sink bids with made-up campaigns camp-N / crid camp-N-cr-M)
// the ad is built from the log: cid, crid, adomain[0] as the advertiser,
// mtype from the logged format, and the logged w x h for banners (0 x 0 for
// video and native, as serving writes unsized creatives).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	logs := flag.String("log", "", "simulator log directories or impressions.jsonl files, comma separated (required)")
	out := flag.String("out", "", "output directory for rows.f32 and rows.json (required)")
	camps := flag.String("campaigns", "", "campaign directory: ads of known campaigns are built as serving builds them")
	maxRows := flag.Int("max-rows", 0, "stop after this many rows (0 = all)")
	seed := flag.Uint64("seed", 0, "the simulator seed of the logs, recorded in rows.json")
	vendor := flag.Int("vendor-id", 0, "privacy.vendor_id of the bidder the model will serve: TC strings are judged for it (0: user-level slots empty wherever GDPR applies)")
	allUsers := flag.Bool("keys-all-users", false, "write every row's user.id to rows.keys, even where the request allows no user-level data: for simulator logs only (made-up users; eval_report.py needs them)")
	flag.Parse()
	if *logs == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: featurize -log DIR[,DIR...] -out OUT [-campaigns DIR] [-max-rows N] [-seed N] [-vendor-id N] [-keys-all-users]")
		os.Exit(2)
	}
	cfg := config{logs: strings.Split(*logs, ","), out: *out, campaigns: *camps, maxRows: *maxRows, seed: *seed, vendorID: *vendor, keysAllUsers: *allUsers}
	m, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "featurize:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "featurize: %d rows (%d skipped), click rate %.5f, mean true CTR %.5f, %s\n",
		m.Rows, m.Skipped, m.ClickRate, m.MeanPTrue, *out)
}
