// Command bidder is the openbidder OpenRTB bidder.
//
//	bidder -config configs/bidder.yaml [-listen ADDR] [-admin-listen ADDR] [-public-url URL] [-check-config]
//	       [-log-level debug|info|warn|error] [-log-format text|json]
//	bidder -version
//	bidder -probe http://127.0.0.1:8080/readyz   (exit 0 when the URL answers 2xx: a container healthcheck)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/openbidder/openbidder/bidder"
)

func main() {
	// A SIGHUP's default action ends the process. Run catches it (a
	// campaign reload) only once the config is loaded, and a SIGHUP sent
	// before that (a deploy tool signalling a fresh process, within its
	// first ~20 ms) killed the bidder: until then it is ignored, as a
	// reload of files not yet read has nothing to do.
	signal.Ignore(syscall.SIGHUP)
	configPath := flag.String("config", "configs/bidder.yaml", "config file")
	listen := flag.String("listen", "", "exchange-facing address (overrides the config's listen)")
	adminListen := flag.String("admin-listen", "", "admin address: status page (/), /admin/*, /metrics, /debug/pprof (overrides admin_listen)")
	publicURL := flag.String("public-url", "", "base of the notice and tracker URLs put in bids (overrides public_url; one config for several instances)")
	check := flag.Bool("check-config", false, "validate the config, campaigns and models, print every problem, and exit")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	logFormat := flag.String("log-format", "text", "text (logfmt) or json (one JSON object a line)")
	probe := flag.String("probe", "", "GET this URL and exit 0 on a 2xx answer, 1 otherwise (a healthcheck for images without curl)")
	showVersion := flag.Bool("version", false, "print the version, commit and Go version, and exit")
	flag.Parse()

	if *showVersion {
		fmt.Println("bidder", bidder.Build())
		return
	}
	if *probe != "" {
		os.Exit(probeURL(*probe, os.Stderr))
	}
	log, err := newLogger(os.Stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bidder:", err)
		os.Exit(2)
	}
	// The app hands log down to every part; libraries that use the global
	// logger get the same level and format.
	slog.SetDefault(log)

	over := bidder.Overrides{Listen: *listen, AdminListen: *adminListen, PublicURL: *publicURL}
	if *check {
		problems, warnings := bidder.SplitWarnings(bidder.CheckConfigFile(*configPath, over))
		for _, w := range warnings {
			fmt.Fprintln(os.Stderr, w)
		}
		if len(problems) > 0 {
			fmt.Fprintln(os.Stderr, errors.Join(problems...))
			os.Exit(1)
		}
		if len(warnings) > 0 {
			fmt.Println("config ok, with warnings:", *configPath)
			return
		}
		fmt.Println("config ok:", *configPath)
		return
	}
	cfg, err := bidder.LoadConfig(*configPath, over)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bidder.ApplyRuntime(cfg.Runtime)
	if err := bidder.Run(cfg, log); err != nil {
		log.Error("bidder stopped", "err", err)
		os.Exit(1)
	}
}

// newLogger is the process's logger: format text or json, at level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is not text or json", format)
}

// probeURL GETs url within 2 seconds: 0 on a 2xx answer, else 1 with the
// reason on errw.
func probeURL(url string, errw io.Writer) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(errw, "bidder: probe:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(errw, "bidder: probe: %s: %s %s\n", url, resp.Status, body)
		return 1
	}
	return 0
}
