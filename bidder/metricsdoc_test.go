package bidder

import (
	"cmp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/openbidder/openbidder/ctr"
)

// docs/metrics.md's "Series" table lists every openbidder_ series, and
// says it does: each family a running bidder shows (with the optional row
// log, shadow model and bid shading turned on, after one bid and one no-bid)
// is in the table, and each name in the table is on the page. The table
// writes a family's siblings short (`openbidder_row_log_offered_total`,
// `_dropped_total`), a set of names with braces
// (`openbidder_budget_{spent,held}_micros`) and the budget's counters as
// `openbidder_budget_*_total`.
func TestMetricsDocListsEverySeries(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "\n## Series\n")
	if table, _, _ = strings.Cut(table, "\n## "); !ok {
		t.Fatal("docs/metrics.md has no Series section")
	}
	// The batcher's series come with the ONNX model.
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	onnx := ctr.ONNXAvailable(lib) == nil
	app := startApp(t, func(c *Config) {
		if onnx {
			c.Model.ONNXLibrary, c.Model.Provider = lib, "cpu"
		}
		c.Model.Shadow = "../configs/models/gbdt.manifest.json"
		c.Model.RowLog.Path = filepath.Join(t.TempDir(), "rows.bin")
		c.Pricing.Shading.Enabled = true
	})
	exercise(t, app)
	code, page := get(t, "http://"+app.AdminAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	families := map[string]bool{} // the TYPE lines: histograms once, not as _bucket
	for _, line := range strings.Split(string(page), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "openbidder_") {
			families[f[2]] = true
		}
	}
	// documented is every name the table gives, globs (a '*') as patterns.
	var documented []string
	cell := regexp.MustCompile("`([^`]+)`")
	for _, row := range strings.Split(table, "\n") {
		cols := strings.Split(row, "|")
		if len(cols) < 3 || !strings.Contains(cols[1], "openbidder_") {
			continue
		}
		base := ""
		for _, m := range cell.FindAllStringSubmatch(cols[1], -1) {
			name := m[1]
			switch {
			case strings.HasPrefix(name, "openbidder_"):
				base = name
			case strings.HasPrefix(name, "_") && base != "":
				// A sibling: it replaces some tail of the row's first name;
				// the one the page has, else the shortest stem's.
				short := name
				name = ""
				for i := len(base) - 1; i > len("openbidder"); i-- {
					if base[i] == '_' && (name == "" || families[base[:i]+short]) {
						name = base[:i] + short
					}
				}
			default:
				continue
			}
			if pre, rest, ok := strings.Cut(name, "{"); ok {
				set, post, _ := strings.Cut(rest, "}")
				for _, s := range strings.Split(set, ",") {
					documented = append(documented, pre+s+post)
				}
				continue
			}
			documented = append(documented, name)
		}
	}
	if len(documented) < 50 {
		t.Fatalf("read only %d names from the Series table", len(documented))
	}
	matches := func(pattern, name string) bool {
		ok, _ := filepath.Match(pattern, name)
		return ok
	}
	for n := range families {
		found := false
		for _, d := range documented {
			if d == n || strings.Contains(d, "*") && matches(d, n) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s is on /metrics but not in docs/metrics.md's Series table", n)
		}
	}
	for _, d := range documented {
		if strings.Contains(d, "*") || !onnx && strings.HasPrefix(d, "openbidder_model_batch_") {
			continue
		}
		if !families[d] {
			t.Errorf("docs/metrics.md lists %s, which a running bidder does not show", d)
		}
	}
}
