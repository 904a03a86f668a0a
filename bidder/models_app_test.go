package bidder

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openbidder/openbidder/ctr"
	"github.com/openbidder/openbidder/features"
)

// model.variant int8 starts the bidder on the int8 manifest (its parity
// sample checked at load), fp32 on the float32 one.
func TestAppServesSelectedVariant(t *testing.T) {
	lib := cmp.Or(os.Getenv("ORT_LIB"), "../lib/onnxruntime/libonnxruntime.so.1")
	if err := ctr.ONNXAvailable(lib); err != nil {
		t.Skip("no ONNX Runtime:", err)
	}
	for _, c := range []struct{ variant, want string }{{"fp32", "mlp"}, {"int8", "mlp_int8"}} {
		app := startApp(t, func(cfg *Config) {
			cfg.Model.ONNXInt8, cfg.Model.Variant = "../configs/models/mlp_int8.manifest.json", c.variant
			cfg.Model.ONNXLibrary, cfg.Model.Provider = lib, "cpu"
		})
		if app.onnx == nil {
			t.Fatalf("variant %s: no onnx model served", c.variant)
		}
		if got := app.servingModel(); got != c.want {
			t.Errorf("variant %s: serving %q, want %q", c.variant, got, c.want)
		}
	}
}

// With model.row_log set, the started bidder writes a record per bid with
// the serving model's name, and closes the file on Close.
func TestAppRowLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows", "rows.bin")
	app := startApp(t, func(c *Config) { c.Model.RowLog = RowLogConfig{Path: path} })
	body, err := os.ReadFile("testdata/requests/site-banner.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, resp, reason := post(t, "http://"+app.Addr()+"/openrtb2/bid", body); code != 200 {
		t.Fatalf("status %d %s %s", code, reason, resp)
	}
	serving := app.servingModel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Close(ctx); err != nil {
		t.Fatal(err)
	}
	width, schema, recs, torn := readRowLog(t, path)
	if width != features.Width || schema != features.SchemaVersion || torn || len(recs) != 1 {
		t.Fatalf("width %d schema %q torn %v records %d", width, schema, torn, len(recs))
	}
	if r := recs[0]; r.Auction != "req-site-banner" || r.Model != serving || r.PCTR <= 0 {
		t.Fatalf("record %+v, serving %q", r, serving)
	}
}
