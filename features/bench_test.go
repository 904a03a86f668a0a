package features

import "testing"

func BenchmarkExtractImp(b *testing.B) {
	req := siteBannerRequest()
	var row [Width]float32
	b.ReportAllocs()
	for b.Loop() {
		ExtractImp(row[:], req, &req.Imps[0], bidTime, true)
	}
}

// BenchmarkRows10: one imp, ten candidate ads: the per-imp work of the bid path.
func BenchmarkRows10(b *testing.B) {
	req := siteBannerRequest()
	ads := make([]Ad, 10)
	for i := range ads {
		ads[i] = NewAd("camp", string(rune('a'+i)), "adv", 1, 300, 250)
	}
	var imp [Width]float32
	rows := make([]float32, 0, len(ads)*Width)
	b.ReportAllocs()
	for b.Loop() {
		ExtractImp(imp[:], req, &req.Imps[0], bidTime, true)
		rows = rows[:0]
		for i := range ads {
			rows = AppendRow(rows, imp[:], &ads[i])
		}
	}
}
