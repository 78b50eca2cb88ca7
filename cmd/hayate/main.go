// Command hayate runs a Hayate node, a WebRTC SFU that speaks Sora's
// signaling, HTTP API and webhooks.
//
//	hayate [-config FILE] [--key=value ...]   run a node
//	hayate --version                          print the version and VCS revision
//	hayate check [-config FILE] [--key=...]   validate the configuration, bind nothing
//	hayate sample-config                      print a configuration file with every key
//	hayate ctl ...                            operate a running node (hayate ctl -h)
//	hayate cluster-cert ca|node ...           make cluster TLS credentials
//
// On SIGTERM or SIGINT the node drains: it refuses new connections at once
// (block_new_connection), keeps the live ones until they leave or
// drain_timeout passes, then exits 0. A second signal exits at once. Run by
// systemd with Type=notify ($NOTIFY_SOCKET set), it reports READY=1 once it
// serves and STOPPING=1 when the drain begins (packaging/hayate.service).
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
	"github.com/hayate-sfu/hayate/internal/sdnotify"
	"github.com/hayate-sfu/hayate/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "ctl":
			return ctl(args[1:], stdout, stderr)
		case "cluster-cert":
			return clusterCert(args[1:], stdout, stderr)
		case "check":
			return check(args[1:], stdout, stderr)
		case "sample-config":
			fmt.Fprint(stdout, config.Sample())
			return 0
		case "version", "-version", "--version":
			fmt.Fprintln(stdout, versionLine(node.Build()))
			return 0
		}
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
	log := newLogger(cfg, stderr)
	n, err := node.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	notify := sdnotify.New(os.Getenv("NOTIFY_SOCKET"))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	n.Start()
	sdNotify(notify, log, "READY=1\nSTATUS=serving, mode "+n.Mode().String())

	sig := <-sigs
	n.StartDrain() // new connections are refused from here on
	log.Info("signal received: draining", "signal", sig.String())
	sdNotify(notify, log, "STOPPING=1\nSTATUS=draining")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if s, ok := <-sigs; ok {
			log.Warn("second signal: stopping now", "signal", s.String())
			cancel()
		}
	}()
	stopStatus := drainStatus(n, notify, log)
	n.Drain(ctx, cfg.DrainTimeout)
	stopStatus()
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer closeCancel()
	n.Close(closeCtx)
	cancel()
	return 0
}

// drainStatus tells systemd, every second while the node drains, how many
// connections are left (systemctl status shows it). It returns a function
// that stops the updates.
func drainStatus(n *node.Node, notify *sdnotify.Notifier, log *slog.Logger) func() {
	if !notify.Enabled() {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				d := n.DrainStatus()
				sdNotify(notify, log, fmt.Sprintf("STATUS=draining: %d of %d connections left, %d sessions",
					d.Connections, d.ConnectionsAtStart, d.Sessions))
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func sdNotify(n *sdnotify.Notifier, log *slog.Logger, state string) {
	if err := n.Notify(state); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
}

// newLogger builds the node's logger from log_level and log_format.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level(cfg.LogLevel)}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// versionLine is `hayate --version`: the version, the VCS revision and
// whether the tree had uncommitted changes, and the Go toolchain.
func versionLine(b node.BuildInfo) string {
	s := "hayate " + b.Version + " revision " + b.Revision
	if b.Modified {
		s += " (modified)"
	}
	if b.Time != "" {
		s += " " + b.Time
	}
	return s + " " + b.GoVersion
}

// check is `hayate check`: the configuration is read and validated as the
// node would, and nothing is bound or started.
func check(args []string, stdout, stderr io.Writer) int {
	cfg, rest, err := config.Load(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hayate check:", err)
		return 2
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "hayate check: unexpected argument %q\n", rest[0])
		return 2
	}
	fmt.Fprintf(stdout, "configuration OK: signaling port %d, API port %d, media %s:%d, initial mode %s, cluster %v\n",
		cfg.SignalingPort, cfg.APIPort, cfg.IPv4Address, cfg.MediaPort, cfg.InitialMode, cfg.Cluster)
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
