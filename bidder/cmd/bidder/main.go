// Command bidder is the openbidder OpenRTB bidder.
//
//	bidder -config configs/bidder.yaml [-listen ADDR] [-admin-listen ADDR] [-check-config]
//	bidder -version
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/openbidder/openbidder/bidder"
)

func main() {
	configPath := flag.String("config", "configs/bidder.yaml", "config file")
	listen := flag.String("listen", "", "exchange-facing address (overrides the config's listen)")
	adminListen := flag.String("admin-listen", "", "admin address: status page (/), /admin/*, /metrics, /debug/pprof (overrides admin_listen)")
	check := flag.Bool("check-config", false, "validate the config, campaigns and models, print every problem, and exit")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	showVersion := flag.Bool("version", false, "print the version, commit and Go version, and exit")
	flag.Parse()

	if *showVersion {
		fmt.Println("bidder", bidder.Build())
		return
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "bidder: -log-level:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := bidder.LoadConfig(*configPath, bidder.Overrides{Listen: *listen, AdminListen: *adminListen})
	if *check {
		if err == nil {
			err = bidder.CheckConfig(cfg)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("config ok:", *configPath)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := bidder.Run(cfg, log); err != nil {
		log.Error("bidder stopped", "err", err)
		os.Exit(1)
	}
}
