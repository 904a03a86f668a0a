package ortb

import (
	"encoding/json"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"
	"github.com/valyala/fastjson"
)

// benchBody is a 1.5 KB single-imp site banner request.
const benchBody = "site_banner.json"

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{benchBody, "app_banner.json", "site_video.json", "site_multi_imp.json"} {
		b.Run(name, func(b *testing.B) {
			body := readFixture(b, name)
			var p Parser
			var r Request
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := p.Parse(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseEncodingJSON is the baseline: encoding/json into the schema
// of record's types, a fresh BidRequest per request as a handler would.
func BenchmarkParseEncodingJSON(b *testing.B) {
	for _, name := range []string{benchBody, "app_banner.json", "site_video.json", "site_multi_imp.json"} {
		b.Run(name, func(b *testing.B) {
			body := readFixture(b, name)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var br openrtb2.BidRequest
				if err := json.Unmarshal(body, &br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseParallel: one pooled Parser per goroutine, as in the server.
func BenchmarkParseParallel(b *testing.B) {
	body := readFixture(b, benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		var p Parser
		var r Request
		for pb.Next() {
			if err := p.Parse(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFastjsonValidate prices a strict validation pass that Parse does
// not make (see the Parse doc comment on what fastjson tolerates).
func BenchmarkFastjsonValidate(b *testing.B) {
	body := readFixture(b, benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := fastjson.ValidateBytes(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGunzip(b *testing.B) {
	body := readFixture(b, benchBody)
	src := gz(b, body)
	var g Gunzipper
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := g.Gunzip(dst[:0], src, 256<<10); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	s := []byte(`<div class="ad"><a href="https://brand.example/?c=1&amp;d=2"><img src="https://cdn.example/x.png" width="300" height="250"></a></div>`)
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		dst = AppendJSONString(dst[:0], s)
	}
}

// BenchmarkFastjsonParseOnly is the floor under Parse: fastjson building its
// tree of the same body, with no member read.
func BenchmarkFastjsonParseOnly(b *testing.B) {
	body := readFixture(b, benchBody)
	var p fastjson.Parser
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := p.ParseBytes(body); err != nil {
			b.Fatal(err)
		}
	}
}
