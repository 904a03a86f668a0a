package campaigns

import (
	"encoding/json"
	"strings"
	"testing"
)

// renderAdm wraps AppendAdm's output in quotes and decodes it as JSON, as an
// exchange would read bid.adm.
func renderAdm(t *testing.T, cr *Creative, click, imp string) string {
	t.Helper()
	buf := append([]byte(`"`), AppendAdm(nil, cr, []byte(click), []byte(imp))...)
	buf = append(buf, '"')
	var s string
	if err := json.Unmarshal(buf, &s); err != nil {
		t.Fatalf("adm is not a valid JSON string: %v\n%s", err, buf)
	}
	return s
}

func TestAppendAdmBanner(t *testing.T) {
	c := baseConfig("b")
	c.Creatives[0].Markup = "<a href=\"{{click_url}}\">\"quoted\" \\ tab\t</a>\n<img src=\"{{ imp_url }}\">"
	s := mustCompile(t, []Config{c})
	cr := s.Creatives[0]
	if cr.MType() != 1 {
		t.Errorf("MType %d", cr.MType())
	}
	click := `https://bid.example/c?a=1&b="x"`
	got := renderAdm(t, cr, click, "https://bid.example/i?x=1")
	want := "<a href=\"" + click + "\">\"quoted\" \\ tab\t</a>\n<img src=\"https://bid.example/i?x=1\">"
	if got != want {
		t.Errorf("adm\n got %q\nwant %q", got, want)
	}
	if n := len(cr.Adm); n != 3 || cr.Adm[0].Slot != SlotClickURL || cr.Adm[1].Slot != SlotImpURL || cr.Adm[2].Slot != SlotNone {
		t.Errorf("parts %+v", cr.Adm)
	}
	// A snapshot keeps one template per creative: exactly sized.
	if cap(cr.Adm) != len(cr.Adm) {
		t.Errorf("%d parts in a slice of capacity %d", len(cr.Adm), cap(cr.Adm))
	}
	for i, p := range cr.Adm {
		if cap(p.Lit) != len(p.Lit) {
			t.Errorf("part %d: %d literal bytes in a slice of capacity %d", i, len(p.Lit), cap(p.Lit))
		}
	}
}

func TestAppendAdmNative(t *testing.T) {
	c := baseConfig("n")
	c.Creatives[0] = CreativeConfig{ID: "n1", Format: "native", LandingURL: "https://n.example/", Secure: true,
		Native: &NativeConfig{Title: `Say "hi" <b>`, Description: "d", ImageURL: "https://i.example/1.jpg", ImageW: 1200, ImageH: 627,
			IconURL: "https://i.example/icon.png", CTA: "Go", Sponsored: "N"}}
	s := mustCompile(t, []Config{c})
	cr := s.Creatives[0]
	if cr.MType() != 4 {
		t.Errorf("MType %d", cr.MType())
	}
	click := `https://bid.example/c?u="q"`
	doc := renderAdm(t, cr, click, "https://bid.example/i")
	var nr struct {
		Ver    string `json:"ver"`
		Assets []struct {
			ID    int                    `json:"id"`
			Title *struct{ Text string } `json:"title"`
			Img   *struct {
				URL  string
				W, H int64
			} `json:"img"`
			Data *struct {
				Type  int
				Value string
			} `json:"data"`
		} `json:"assets"`
		Link        struct{ URL string } `json:"link"`
		ImpTrackers []string             `json:"imptrackers"`
	}
	if err := json.Unmarshal([]byte(doc), &nr); err != nil {
		t.Fatalf("native response is not JSON: %v\n%s", err, doc)
	}
	if nr.Ver != "1.2" || nr.Link.URL != click || len(nr.ImpTrackers) != 1 || nr.ImpTrackers[0] != "https://bid.example/i" {
		t.Errorf("native response %+v", nr)
	}
	ids := []int{}
	for _, a := range nr.Assets {
		ids = append(ids, a.ID)
	}
	if len(ids) != 6 || nr.Assets[0].Title.Text != `Say "hi" <b>` || nr.Assets[1].Img.W != 1200 || nr.Assets[2].Data.Value != "d" {
		t.Errorf("assets %v %+v", ids, nr.Assets)
	}
}

func TestAppendAdmVideoFromExamples(t *testing.T) {
	s, err := LoadDir("../configs/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range s.Creatives {
		doc := renderAdm(t, cr, "https://bid.example/click", "https://bid.example/imp")
		if strings.Contains(doc, "{{") {
			t.Errorf("%s: placeholder left in %q", cr.ID, doc)
		}
		if !strings.Contains(doc, "https://bid.example/imp") {
			t.Errorf("%s: no impression tracker", cr.ID)
		}
		if cr.Format != FormatAudio && !strings.Contains(doc, "https://bid.example/click") {
			t.Errorf("%s: no click tracker", cr.ID)
		}
		if (cr.Format == FormatVideo || cr.Format == FormatAudio) != strings.HasPrefix(doc, "<VAST") {
			t.Errorf("%s (%v): markup starts %q", cr.ID, cr.Format, doc[:min(10, len(doc))])
		}
	}
}

// appendJSONContent's output, quoted, decodes back to its input, whatever
// mix of plain runs and bytes to escape the input has.
func TestAppendJSONContentRoundTrip(t *testing.T) {
	for _, in := range []string{
		"", "plain", `"`, `\`, "a\"b\\c", "\x00\x01\x1f\x7f", "line\nbreak\r\ttab",
		"http://h/notice/imp?t=AbC-_9.xyz&p=${AUCTION_PRICE}", "ünïcödé \"quoted\" end\\", "\x1fstart", "end\x1f",
	} {
		out := appendJSONContent([]byte("prefix"), []byte(in))
		if !strings.HasPrefix(string(out), "prefix") {
			t.Fatalf("%q: prefix lost: %q", in, out)
		}
		var got string
		if err := json.Unmarshal(append(append([]byte(`"`), out[len("prefix"):]...), '"'), &got); err != nil || got != in {
			t.Errorf("%q: escaped %q decodes to %q (%v)", in, out[len("prefix"):], got, err)
		}
	}
}
