// Command hayate runs a Hayate node, a WebRTC SFU that speaks Sora's
// signaling, HTTP API and webhooks.
//
//	hayate [-config FILE] [--key=value ...]   run a node
//	hayate ctl mode get                       print the node's mode
//	hayate ctl mode set MODE                  change it (ChangeMode)
//	hayate cluster-cert ca|node ...           make cluster TLS credentials
//
// On SIGTERM or SIGINT the node drains: it refuses new connections at once
// (block_new_connection), keeps the live ones until they leave or
// drain_timeout passes, then exits 0. A second signal exits at once.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ctl" {
		return ctl(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cluster-cert" {
		return clusterCert(args[1:], stdout, stderr)
	}
	cfg, rest, err := config.Load(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hayate:", err)
		return 2
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "hayate: unexpected argument %q (run with -h for the flags)\n", rest[0])
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
	n, err := node.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	n.Start()

	sig := <-sigs
	n.StartDrain() // new connections are refused from here on
	log.Info("signal received: draining", "signal", sig.String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if s, ok := <-sigs; ok {
			log.Warn("second signal: stopping now", "signal", s.String())
			cancel()
		}
	}()
	n.Drain(ctx, cfg.DrainTimeout)
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer closeCancel()
	n.Close(closeCtx)
	cancel()
	return 0
}

func level(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
