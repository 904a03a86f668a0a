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
		default:
			p.add(fmt.Sprintf("targeting.inventory[%d]", i), "%q is not site or app", inv)
		}
	}
	t.SiteAllow = siteDomains(p, "targeting.site_domains.allow", tc.SiteDomains.Allow)
	t.SiteBlock = siteDomains(p, "targeting.site_domains.block", tc.SiteDomains.Block)
	t.AppAllow = nonEmpty(p, "targeting.app_bundles.allow", tc.AppBundles.Allow, false)
	t.AppBlock = nonEmpty(p, "targeting.app_bundles.block", tc.AppBundles.Block, false)
	if len(t.SiteAllow) > 0 && !t.Site {
		p.add("targeting.site_domains.allow", "set but inventory excludes site")
	}
	if len(t.AppAllow) > 0 && !t.App {
		p.add("targeting.app_bundles.allow", "set but inventory excludes app")
	}
	t.Publishers = nonEmpty(p, "targeting.publisher_ids", tc.Publishers, false)
	t.CatAllow = categories(p, "targeting.categories.allow", tc.Categories.Allow)
	t.CatBlock = categories(p, "targeting.categories.block", tc.Categories.Block)
	t.Deals = nonEmpty(p, "targeting.deals", tc.Deals, false)
	t.OpenAuction = tc.OpenAuction == nil || *tc.OpenAuction
	if !t.OpenAuction && len(t.Deals) == 0 {
		p.add("targeting.open_auction", "false with no deals: the campaign could never bid")
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

func categories(p problems, path string, in []string) []string {
	var out []string
	for i, c := range in {
		u := strings.ToUpper(strings.TrimSpace(c))
		if !categoryRE.MatchString(u) {
			p.add(fmt.Sprintf("%s[%d]", path, i), "%q is not an IAB category (IAB1..IAB26, IAB1-2)", c)
			continue
		}
		out = append(out, u)
	}
	return uniq(out)
}
