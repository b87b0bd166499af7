// Command load measures POST /v1/authorize through the whole HTTP stack of
// the example server (HTTP attestation, capability verification, RBAC,
// rate limit, audit append) on the loopback interface.
//
// It either starts a server binary itself (-server, with a fresh data
// directory and rate limits raised out of the way) or targets a running one
// (-url and -admin). It registers one agent per worker, issues each a
// capability, then sends at most -n attested authorize requests with -c
// workers for at most -duration, and prints requests/s and latency
// percentiles. Only loopback addresses are accepted as targets.
//
//	go build -o /tmp/talos-server ./examples/server
//	go run ./examples/load -server /tmp/talos-server -n 20000 -c 8 -duration 15s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/talosgo/talos/identity"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type options struct {
	server, url, admin string
	n, c               int
	duration           time.Duration
}

func run() error {
	var o options
	flag.StringVar(&o.server, "server", "", "server binary to start on 127.0.0.1 (go build -o ... ./examples/server)")
	flag.StringVar(&o.url, "url", "", "base URL of a running server on loopback, e.g. http://127.0.0.1:8080")
	flag.StringVar(&o.admin, "admin", os.Getenv("TALOS_ADMIN_CREDENTIAL"), "admin bootstrap credential of the running server (or TALOS_ADMIN_CREDENTIAL)")
	flag.IntVar(&o.n, "n", 20000, "maximum number of authorize requests (1 to 10,000,000)")
	flag.IntVar(&o.c, "c", 8, "concurrent workers, one agent each (1 to 256)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "maximum run time (at most 5m)")
	flag.Parse()
	if o.n < 1 || o.n > 10_000_000 || o.c < 1 || o.c > 256 || o.duration <= 0 || o.duration > 5*time.Minute {
		return errors.New("-n, -c or -duration out of range")
	}
	ctx := context.Background()
	if o.server != "" {
		stop, err := startServer(ctx, &o)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.url == "" || o.admin == "" {
		return errors.New("give -server, or -url and -admin")
	}
	if err := checkLoopback(o.url); err != nil {
		return err
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConns: o.c * 2, MaxIdleConnsPerHost: o.c * 2, IdleConnTimeout: time.Minute},
		Timeout:   10 * time.Second,
	}
	workers := make([]*worker, o.c)
	for i := range workers {
		w, err := newWorker(ctx, client, o, i)
		if err != nil {
			return err
		}
		workers[i] = w
	}

	var sent atomic.Int64
	deadline := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	begin := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && sent.Add(1) <= int64(o.n) {
				w.one(ctx, client, o.url)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)

	var lat []time.Duration
	var allowed, denied, failed int
	statuses := map[int]int{}
	for _, w := range workers {
		lat = append(lat, w.lat...)
		allowed += w.allowed
		denied += w.denied
		failed += w.failed
		for k, v := range w.status {
			statuses[k] += v
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("requests %d in %.2fs with %d workers: %.0f requests/s\n", len(lat), elapsed.Seconds(), o.c, float64(len(lat))/elapsed.Seconds())
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  max %v\n", pct(0.50), pct(0.90), pct(0.99), pct(1))
	fmt.Printf("allowed %d  denied %d  failed %d  statuses %v\n", allowed, denied, failed, statuses)
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	return nil
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return errors.New("-url must be http://127.0.0.1:port (loopback only)")
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("-url must be a loopback address (127.0.0.0/8, ::1 or localhost)")
	}
	return nil
}

// startServer runs the server binary on a free loopback port with a fresh
// data directory, reads its DID and admin credential from its output, and
// waits until it is ready.
func startServer(ctx context.Context, o *options) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "talos-load-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, o.server, "-data", dir+"/data", "-listen", addr, "-trace-exporter", "none", "-kek-rotation", "0")
	cmd.Env = append(os.Environ(), "TALOS_RATE_LIMITS=kernel.authorize=1000000/s")
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	sc := bufio.NewScanner(out)
	for o.admin == "" && sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 1 && strings.HasPrefix(f[0], "talos_admin_") {
			o.admin = f[0]
		}
	}
	go io.Copy(io.Discard, out)
	if o.admin == "" {
		stop()
		return nil, errors.New("the server printed no admin credential")
	}
	o.url = "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(o.url + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return stop, nil
			}
		}
		if i == 100 {
			stop()
			return nil, errors.New("the server did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// worker is one agent: its wallet, attestation signer and capability, and
// what it measured.
type worker struct {
	signer *identity.AttestationSigner
	body   []byte

	lat                     []time.Duration
	allowed, denied, failed int
	status                  map[int]int
}

func newWorker(ctx context.Context, client *http.Client, o options, i int) (*worker, error) {
	w, err := identity.GenerateWallet(fmt.Sprintf("load-%d", i))
	if err != nil {
		return nil, err
	}
	did := w.DID().String()
	if err := admin(ctx, client, o, "PUT", "/v1/principals/"+did, map[string]any{"team_id": "load"}, nil); err != nil {
		return nil, err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := admin(ctx, client, o, "POST", "/v1/capabilities", map[string]any{
		"subject": did, "grants": []map[string]any{{"tool": "files", "actions": []string{"read"}}}, "expires_in_seconds": 3600,
	}, &tok); err != nil {
		return nil, err
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"capability": tok.Token, "tool": "files", "action": "read"})
	return &worker{signer: signer, body: body, status: map[int]int{}}, nil
}

func admin(ctx context.Context, client *http.Client, o options, method, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, o.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+o.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	if out != nil {
		return json.Unmarshal(rb, out)
	}
	return nil
}

// one sends one attested authorize request and records its latency (signing
// included: it is part of what a client pays).
func (w *worker) one(ctx context.Context, client *http.Client, base string) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/authorize", bytes.NewReader(w.body))
	if err != nil {
		w.failed++
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if err := w.signer.Sign(req, "kernel.authorize"); err != nil {
		w.failed++
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		w.failed++
		return
	}
	var d struct {
		Allowed bool `json:"allowed"`
	}
	err = json.NewDecoder(resp.Body).Decode(&d)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	w.lat = append(w.lat, time.Since(start))
	w.status[resp.StatusCode]++
	switch {
	case err != nil || resp.StatusCode != 200:
		w.failed++
	case d.Allowed:
		w.allowed++
	default:
		w.denied++
	}
}
