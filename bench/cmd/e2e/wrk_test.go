package main

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseWrk(t *testing.T) {
	f := func(file string, want wrkResult) {
		t.Helper()
		b, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseWrk(string(b))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		got.Raw = ""
		if got != want {
			t.Errorf("%s:\ngot  %+v\nwant %+v", file, got, want)
		}
	}
	f("wrk-bidder.txt", wrkResult{Requests: 77641, Seconds: 10, ReqPerSec: 7763.55, LatencyAvg: 2740, LatencyMax: 123020,
		P50: 1970, P75: 2410, P90: 3020, P99: 41370, SocketErrs: 12, NonSuccess: 3})
	f("wrk-trivial.txt", wrkResult{Requests: 22315, Seconds: 2.06, ReqPerSec: 10849.46, LatencyAvg: 8970, LatencyMax: 113000,
		P50: 1470, P75: 9900, P90: 27110, P99: 81930})
}

// Output without the latency distribution (no --latency) or cut short is
// refused, not read as zeros.
func TestParseWrkIncomplete(t *testing.T) {
	b, err := os.ReadFile("testdata/wrk-bidder.txt")
	if err != nil {
		t.Fatal(err)
	}
	full := string(b)
	for name, out := range map[string]string{
		"no distribution": strings.Replace(full, "     99%   41.37ms\n", "", 1),
		"no rate":         full[:strings.Index(full, "Requests/sec:")],
		"empty":           "",
		"bad unit":        strings.Replace(full, "41.37ms", "41.37xs", 1),
	} {
		if _, err := parseWrk(out); !errors.Is(err, errWrkOutput) {
			t.Errorf("%s: err %v, want errWrkOutput", name, err)
		}
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]float64{"625.00us": 625, "1.47ms": 1470, "2.06s": 2.06e6, "1.50m": 90e6, "0.01h": 36e6} {
		got, err := parseWrkDuration(in)
		if err != nil || got < want*(1-1e-9) || got > want*(1+1e-9) {
			t.Errorf("%s: %v, %v; want %v", in, got, err, want)
		}
	}
}

// The script posts the body byte for byte, whatever brackets it holds.
func TestWrkScript(t *testing.T) {
	body := []byte(`{"id":"x","ext":{"a":"]=]"}}`)
	s := wrkScript(body)
	if !strings.Contains(s, `wrk.body = [==[`+string(body)+`]==]`) || !strings.Contains(s, `wrk.method = "POST"`) {
		t.Errorf("script:\n%s", s)
	}
}
