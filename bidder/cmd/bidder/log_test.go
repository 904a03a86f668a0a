package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestNewLogger(t *testing.T) {
	f := func(format, level string, wantErr bool, check func(out string) bool) {
		t.Helper()
		var buf bytes.Buffer
		log, err := newLogger(&buf, format, level)
		if (err != nil) != wantErr {
			t.Fatalf("%s/%s: err %v, want error %v", format, level, err, wantErr)
		}
		if err != nil {
			return
		}
		log.Debug("debug line", "k", 1)
		log.Info("info line", "k", 2)
		if !check(buf.String()) {
			t.Errorf("%s/%s: %q", format, level, buf.String())
		}
	}
	f("text", "info", false, func(out string) bool {
		return strings.Contains(out, `level=INFO msg="info line" k=2`) && !strings.Contains(out, "debug line")
	})
	f("text", "debug", false, func(out string) bool { return strings.Contains(out, `msg="debug line"`) })
	f("json", "info", false, func(out string) bool {
		var line struct {
			Level, Msg string
			K          int
		}
		err := json.Unmarshal([]byte(strings.TrimSpace(out)), &line)
		return err == nil && line.Level == "INFO" && line.Msg == "info line" && line.K == 2
	})
	f("json", "warn", false, func(out string) bool { return out == "" })
	f("yaml", "info", true, nil)
	f("json", "loud", true, nil)
}

func TestProbe(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var errw bytes.Buffer
	if code := probeURL(srv.URL+"/readyz", &errw); code != 0 {
		t.Errorf("ready: exit %d (%s)", code, errw.String())
	}
	ready.Store(false)
	if code := probeURL(srv.URL+"/readyz", &errw); code != 1 || !strings.Contains(errw.String(), "draining") {
		t.Errorf("not ready: exit %d (%s)", code, errw.String())
	}
	srv.Close()
	if code := probeURL(srv.URL+"/readyz", &errw); code != 1 {
		t.Errorf("closed: exit %d", code)
	}
}
