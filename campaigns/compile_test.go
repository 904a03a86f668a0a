package campaigns

import "testing"

// Campaigns in one zone share its *time.Location, across compiles: the zone
// file is read once, and the budget's per-zone day cache (keyed by the
// pointer) serves them all.
func TestCampaignsShareTheirZone(t *testing.T) {
	var cfgs []Config
	for _, id := range []string{"a", "b", "c"} {
		c := baseConfig(id)
		c.TimeZone = "Europe/Paris"
		cfgs = append(cfgs, c)
	}
	cfgs[2].TimeZone = "Asia/Tokyo"
	s1, s2 := mustCompile(t, cfgs), mustCompile(t, cfgs)
	paris := s1.Campaigns[0].TimeZone
	if paris.String() != "Europe/Paris" || s1.Campaigns[1].TimeZone != paris || s2.Campaigns[0].TimeZone != paris {
		t.Fatalf("Paris campaigns hold different zones: %p %p %p", paris, s1.Campaigns[1].TimeZone, s2.Campaigns[0].TimeZone)
	}
	if tokyo := s1.Campaigns[2].TimeZone; tokyo.String() != "Asia/Tokyo" || tokyo != s2.Campaigns[2].TimeZone {
		t.Fatalf("Tokyo: %v", tokyo)
	}
}
