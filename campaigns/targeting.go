package campaigns

import (
	"fmt"
	"strings"
	"time"
)

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func buildTargeting(tc *TargetingConfig, p problems) (Targeting, bool) {
	var t Targeting
	for i, c := range tc.Countries {
		u := strings.ToUpper(strings.TrimSpace(c))
		if !countryRE.MatchString(u) {
			p.add(fmt.Sprintf("targeting.countries[%d]", i), "%q is not an ISO 3166-1 alpha-3 code (USA, GBR)", c)
			continue
		}
		t.Countries = append(t.Countries, u)
	}
	t.Countries = uniq(t.Countries)
	t.Regions = nonEmpty(p, "targeting.regions", tc.Regions, true)
	t.Metros = nonEmpty(p, "targeting.metros", tc.Metros, true)
	t.Cities = nonEmpty(p, "targeting.cities", tc.Cities, true)
	for i, l := range tc.Languages {
		l = strings.ToLower(strings.TrimSpace(l))
		if !languageRE.MatchString(l) {
			p.add(fmt.Sprintf("targeting.languages[%d]", i), "%q is not an ISO 639 language code (en, de, fil)", tc.Languages[i])
			continue
		}
		t.Languages = append(t.Languages, l)
	}
	t.Languages = uniq(t.Languages)
	t.ConnTypes = intsIn(p, "targeting.connection_types", tc.ConnectionTypes, 1, 7,
		"an OpenRTB connection type (1 ethernet, 2 wifi, 3 cellular, 4 2G, 5 3G, 6 4G, 7 5G)")
	t.Carriers = nonEmpty(p, "targeting.carriers", tc.Carriers, true)
	for i, d := range tc.DeviceTypes {
		if d < 1 || d > 7 {
			p.add(fmt.Sprintf("targeting.device_types[%d]", i), "%d is not an OpenRTB device type (1..7)", d)
			continue
		}
		t.DeviceTypes = append(t.DeviceTypes, d)
	}
	t.OS = nonEmpty(p, "targeting.os", tc.OS, true)
	t.Site, t.App = len(tc.Inventory) == 0, len(tc.Inventory) == 0
	for i, inv := range tc.Inventory {
		switch strings.ToLower(inv) {
		case "site":
			t.Site = true
		case "app":
			t.App = true
		case "dooh":
			t.DOOH = true
		default:
			p.add(fmt.Sprintf("targeting.inventory[%d]", i), "%q is not site, app or dooh", inv)
		}
	}
	t.VenueTypes = nonEmpty(p, "targeting.venue_types", tc.VenueTypes, true)
	if len(t.VenueTypes) > 0 && !t.DOOH {
		p.add("targeting.venue_types", "set but inventory excludes dooh")
	}
	t.SiteAllow = siteDomains(p, "targeting.site_domains.allow", tc.SiteDomains.Allow)
	t.SiteBlock = siteDomains(p, "targeting.site_domains.block", tc.SiteDomains.Block)
	t.AppAllow = appBundles(nonEmpty(p, "targeting.app_bundles.allow", tc.AppBundles.Allow, false))
	t.AppBlock = appBundles(nonEmpty(p, "targeting.app_bundles.block", tc.AppBundles.Block, false))
	if len(t.SiteAllow) > 0 && !t.Site {
		p.add("targeting.site_domains.allow", "set but inventory excludes site")
	}
	if len(t.AppAllow) > 0 && !t.App {
		p.add("targeting.app_bundles.allow", "set but inventory excludes app")
	}
	t.Publishers = nonEmpty(p, "targeting.publisher_ids", tc.Publishers, false)
	t.CatTax = taxonomy(p, "targeting.categories.taxonomy", tc.Categories.Taxonomy)
	t.CatAllow = categories(p, "targeting.categories.allow", tc.Categories.Allow, t.CatTax)
	t.CatBlock = categories(p, "targeting.categories.block", tc.Categories.Block, t.CatTax)
	t.Deals = nonEmpty(p, "targeting.deals", tc.Deals, false)
	t.Exchanges = nonEmpty(p, "targeting.exchanges", tc.Exchanges, false)
	t.OpenAuction = tc.OpenAuction == nil || *tc.OpenAuction
	if !t.OpenAuction && len(t.Deals) == 0 {
		p.add("targeting.open_auction", "false with no deals: the campaign could never bid")
	}
	if tc.Rewarded != nil {
		t.Rewarded = -1
		if *tc.Rewarded {
			t.Rewarded = 1
		}
	}
	t.Segments = nonEmpty(p, "targeting.segments", tc.Segments, false)
	buildDayparting(tc.Dayparting, &t, p)
	return t, tc.AllowCOPPA
}

func buildDayparting(d *DaypartConf, t *Targeting, p problems) {
	if d == nil {
		return
	}
	t.Dayparting = true
	for i := range t.Days {
		t.Days[i] = len(d.Days) == 0
	}
	for i := range t.Hours {
		t.Hours[i] = len(d.Hours) == 0
	}
	for i, s := range d.Days {
		wd, ok := dayNames[strings.ToLower(strings.TrimSpace(s))[:min(3, len(strings.TrimSpace(s)))]]
		if !ok {
			p.add(fmt.Sprintf("targeting.dayparting.days[%d]", i), "%q is not a day (mon..sun)", s)
			continue
		}
		t.Days[wd] = true
	}
	for i, h := range d.Hours {
		if h < 0 || h > 23 {
			p.add(fmt.Sprintf("targeting.dayparting.hours[%d]", i), "%d is not an hour (0..23)", h)
			continue
		}
		t.Hours[h] = true
	}
}

func nonEmpty(p problems, path string, in []string, lower bool) []string {
	var out []string
	for i, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			p.add(fmt.Sprintf("%s[%d]", path, i), "empty value")
			continue
		}
		if lower {
			s = strings.ToLower(s)
		}
		out = append(out, s)
	}
	return uniq(out)
}

func siteDomains(p problems, path string, in []string) []string {
	out := domains(p, path, in)
	for i, d := range out {
		out[i] = strings.TrimPrefix(d, "www.")
	}
	return uniq(out)
}

// categories checks category ids of taxonomy tax: IAB1..IAB26 and IAB1-2
// style (upper-cased) for taxonomy 1, the taxonomy's own ids as written for
// the others.
func categories(p problems, path string, in []string, tax int64) []string {
	var out []string
	for i, c := range in {
		c = strings.TrimSpace(c)
		if tax != 1 {
			if !categoryIDRE.MatchString(c) {
				p.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a category id of taxonomy %d", in[i], tax)
				continue
			}
			out = append(out, c)
			continue
		}
		u := strings.ToUpper(c)
		if !categoryRE.MatchString(u) {
			p.add(fmt.Sprintf("%s[%d]", path, i), "%q is not an IAB category (IAB1..IAB26, IAB1-2)", in[i])
			continue
		}
		out = append(out, u)
	}
	return uniq(out)
}

// taxonomy checks an OpenRTB cattax value; 0 means 1 (IAB Content Category
// Taxonomy 1.0).
func taxonomy(p problems, path string, tax int64) int64 {
	switch {
	case tax == 0:
		return 1
	case tax >= 1 && tax <= 7, tax >= 500:
		return tax
	}
	p.add(path, "%d is not an OpenRTB category taxonomy (1..7, or 500+ exchange-specific)", tax)
	return 1
}

// appBundles writes app bundle ids as bapp's are compared (appKey, in lower
// case), so that app.bundle, read the same way, matches them whatever form
// the publisher wrote it in: a block of com.bad.game let com.Bad.Game
// through, and one of id1234567890 the same App Store app as 1234567890
// (an outside targeting audit; bapp was read so already).
func appBundles(in []string) []string {
	for i, s := range in {
		in[i] = strings.ToLower(string(appKey([]byte(s))))
	}
	return in
}
