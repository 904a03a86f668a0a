package simulator

import (
	"errors"
	"reflect"
	"testing"
)

func TestCheckHost(t *testing.T) {
	f := func(u string, allow, ok bool) {
		t.Helper()
		err := CheckHost(u, allow)
		if (err == nil) != ok {
			t.Errorf("CheckHost(%q, allow=%v) = %v, want ok=%v", u, allow, err, ok)
		}
		if err != nil && !allow && !ok && errors.Is(err, ErrNonLocal) == false && u != "ftp://127.0.0.1/" && u != "::bad" {
			t.Errorf("CheckHost(%q): %v is not ErrNonLocal", u, err)
		}
	}
	f("http://127.0.0.1:8080/openrtb2/bid", false, true)
	f("http://127.9.9.9/x", false, true)
	f("http://localhost:1/", false, true)
	f("http://[::1]:9/", false, true)
	f("http://10.0.0.1/", false, false)
	f("http://8.8.8.8/", false, false)
	f("https://example.com/", false, false)
	f("http://127.0.0.1.example.com/", false, false)
	f("http://example.com/", true, true)
	f("ftp://127.0.0.1/", false, false)
}

func TestNewRunnerRefusesNonLoopback(t *testing.T) {
	f := func(cfg Config, wantErr error) {
		t.Helper()
		_, err := NewRunner(cfg)
		if !errors.Is(err, wantErr) {
			t.Errorf("NewRunner(%v, %v): err %v, want %v", cfg.Targets, cfg.Admin, err, wantErr)
		}
	}
	f(Config{Targets: []string{"http://192.0.2.1/openrtb2/bid"}}, ErrNonLocal)
	f(Config{Targets: []string{"http://127.0.0.1:1/openrtb2/bid", "http://example.com/bid"}}, ErrNonLocal)
	f(Config{Targets: []string{"http://127.0.0.1:1/bid"}, Admin: []string{"http://10.1.1.1:9/"}}, ErrNonLocal)
	f(Config{}, ErrNoTarget)
	f(Config{Targets: []string{"http://192.0.2.1/openrtb2/bid"}, AllowNonLocal: true}, nil)
}

func TestSubstitute(t *testing.T) {
	m := Macros{AuctionID: "req-1", BidID: "b1", ImpID: "2", SeatID: "s", AdID: "ad", Currency: "EUR", Price: 1.23456789, Loss: 102}
	f := func(in, want string) {
		t.Helper()
		if got := Substitute(in, m); got != want {
			t.Errorf("Substitute(%q) = %q, want %q", in, got, want)
		}
	}
	f("http://h/notice/win?t=x&p=${AUCTION_PRICE}", "http://h/notice/win?t=x&p=1.234568")
	f("http://h/notice/loss?t=x&p=${AUCTION_PRICE}&r=${AUCTION_LOSS}", "http://h/notice/loss?t=x&p=1.234568&r=102")
	f("${AUCTION_ID}/${AUCTION_BID_ID}/${AUCTION_IMP_ID}/${AUCTION_SEAT_ID}/${AUCTION_AD_ID}/${AUCTION_CURRENCY}",
		"req-1/b1/2/s/ad/EUR")
	f("no macros", "no macros")
	m.Loss = -1
	f("r=${AUCTION_LOSS}", "r=${AUCTION_LOSS}")
	if got := FormatPrice(2); got != "2" {
		t.Errorf("FormatPrice(2) = %q", got)
	}
	if got := FormatPrice(0.000001); got != "0.000001" {
		t.Errorf("FormatPrice(1e-6) = %q", got)
	}
}

func TestFindTrackers(t *testing.T) {
	f := func(name, adm string, want Trackers) {
		t.Helper()
		if got := FindTrackers(adm); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	f("banner html", `<a href="http://127.0.0.1:9/notice/click?t=A&amp;u=1"><img src="https://cdn.example.com/x.png"></a>`+
		`<img src='http://127.0.0.1:9/notice/imp?t=A&amp;p=1.5' width=1>`,
		Trackers{Imp: []string{"http://127.0.0.1:9/notice/imp?t=A&p=1.5"}, Click: []string{"http://127.0.0.1:9/notice/click?t=A&u=1"}})
	f("vast cdata", `<VAST><Ad><InLine><Impression><![CDATA[http://h:1/notice/imp?t=V]]></Impression>`+
		`<Impression>http://h:1/other/pixel</Impression><ClickThrough><![CDATA[http://h:1/notice/click?t=V]]></ClickThrough></InLine></Ad></VAST>`,
		Trackers{Imp: []string{"http://h:1/notice/imp?t=V"}, Click: []string{"http://h:1/notice/click?t=V"}})
	f("native json", `{"native":{"ver":"1.2","link":{"url":"http:\/\/h:1\/notice\/click?t=N\u0026x=1"},`+
		`"imptrackers":["http://h:1/notice/imp?t=N","http://h:1/notice/imp?t=N2"]}}`,
		Trackers{Imp: []string{"http://h:1/notice/imp?t=N", "http://h:1/notice/imp?t=N2"}, Click: []string{"http://h:1/notice/click?t=N&x=1"}})
	f("nothing", `<div>httpx nothing http</div>`, Trackers{})
}
