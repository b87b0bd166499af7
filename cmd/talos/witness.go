package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

const witnessStateVersion = "talos.witness-state.v1"

// fileWitnessStore is an audit.WitnessStore in a file: one canonical JSON
// object mapping each log origin to the latest checkpoint note cosigned,
// replaced atomically (write to a temporary file, rename). It is safe for
// concurrent use within one process; run one witness per state file.
type fileWitnessStore struct {
	path string
	mu   sync.Mutex // guards the file
}

var _ audit.WitnessStore = (*fileWitnessStore)(nil)

func (s *fileWitnessStore) load() (*stateFile, error) {
	st, err := loadState(s.path, witnessStateVersion)
	if err != nil {
		return nil, audit.StoreError("witness state file unreadable", err)
	}
	return st, nil
}

// Latest implements audit.WitnessStore.
func (s *fileWitnessStore) Latest(ctx context.Context, origin string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	n, ok := st.Logs[origin]
	if !ok {
		return nil, audit.NotFound("no checkpoint cosigned for this log")
	}
	return []byte(n), nil
}

// Swap implements audit.WitnessStore.
func (s *fileWitnessStore) Swap(ctx context.Context, origin string, prev, next []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.load()
	if err != nil {
		return err
	}
	cur, ok := st.Logs[origin]
	if ok != (prev != nil) || !bytes.Equal([]byte(cur), prev) {
		return audit.StoreError("witness state changed concurrently", nil)
	}
	st.Logs[origin] = string(next)
	if err := st.save(s.path); err != nil {
		return audit.StoreError("cannot write the witness state", err)
	}
	return nil
}

// witnessFlags are shared by cosign and serve.
type witnessFlags struct {
	wallet, name, state string
	pass                passFlags
}

func (w *witnessFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.wallet, "wallet", "", "the witness's wallet file; use a key that signs nothing else (required)")
	fs.StringVar(&w.name, "name", "", "the witness's key name, a schema-less URL such as witness.example.com/w1 (required)")
	fs.StringVar(&w.state, "state", "", "file keeping the latest cosigned checkpoint of each log (required)")
	w.pass.register(fs)
}

func (w *witnessFlags) check() error {
	if w.wallet == "" || w.name == "" || w.state == "" {
		return usageError("--wallet, --name and --state are required")
	}
	return nil
}

func (e *env) newWitness(wf witnessFlags, logs []note.Verifier) (*audit.Witness, error) {
	wal, err := e.loadWallet(wf.wallet, wf.pass)
	if err != nil {
		return nil, err
	}
	w, err := audit.NewWitness(audit.WitnessConfig{Name: wf.name, Signer: wal.Signer(), Logs: logs, State: &fileWitnessStore{path: wf.state}})
	if err != nil {
		return nil, usageError("cannot start the witness: %v", err)
	}
	return w, nil
}

func cmdWitnessCosign(e *env, args []string) error {
	const syn = "talos witness cosign --wallet FILE --name NAME --state FILE --log-key KEY [--origin ORIGIN] [--out FILE] (DIR | URL)"
	fs := newFlags("witness cosign")
	var wf witnessFlags
	wf.register(fs)
	key := fs.String("log-key", "", "the log's public key: a C2SP verifier key or a did:key (required)")
	origin := fs.String("origin", "", "the log's origin, with a did:key (default: the checkpoint's origin line)")
	out := fs.String("out", "", "write the cosigned checkpoint to this file instead of stdout")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	if arg == "" {
		return usageError("need the log's directory or URL")
	}
	if err := wf.check(); err != nil {
		return err
	}
	k, err := parseLogKey(*key, *origin)
	if err != nil {
		return err
	}
	src, err := newSource(arg, "")
	if err != nil {
		return err
	}
	asJSON := jsonOut(fs)
	ctx := e.ctx
	msg, err := src.read(ctx, "checkpoint", audit.MaxCheckpointSize)
	if errors.Is(err, errTileNotFound) {
		return failf(exitIO, "%s has no checkpoint", src)
	}
	if err != nil {
		return err
	}
	v, err := k.verifier(msg)
	if err != nil {
		return e.failJSON(asJSON, err, nil)
	}
	cp, err := k.open(msg)
	if err != nil {
		return e.failJSON(asJSON, err, nil)
	}
	w, err := e.newWitness(wf, []note.Verifier{v})
	if err != nil {
		return err
	}
	// The proof from the last cosigned size, from the log's tiles (verified
	// against the new checkpoint's root); the witness checks it.
	var oldSize uint64
	var proof tlog.TreeProof
	if prev, ok := w.Latest(ctx, cp.Origin); ok {
		oldSize = prev.Size
		if cp.Size > prev.Size {
			tr := &tileReader{ctx: ctx, src: src}
			if proof, err = tlog.ProveTree(int64(cp.Size), int64(prev.Size), tlog.TileHashReader(cp.Tree(), tr)); err != nil {
				if tr.err != nil {
					return e.failJSON(asJSON, tr.err, nil)
				}
				return e.failJSON(asJSON, wrap(exitFailed, "hash tiles do not match the checkpoint", err), nil)
			}
		}
	} else if _, err := (&fileWitnessStore{path: wf.state}).Latest(ctx, cp.Origin); err != nil && contracts.CodeOf(err) != contracts.CodeNotFound {
		return e.failJSON(asJSON, wrap(exitIO, "witness state", err), nil)
	}
	lines, err := w.AddCheckpoint(ctx, oldSize, proof, cp.Note)
	if err != nil {
		var split *audit.SplitViewError
		if errors.As(err, &split) {
			sv := &splitViewError{prev: split.A, cur: split.B, why: "not consistent with the checkpoint cosigned before; not cosigned"}
			return e.failJSON(asJSON, sv, map[string]any{"split_view": map[string]any{"previous": string(split.A.Note), "current": string(split.B.Note)}})
		}
		if contracts.CodeOf(err) == contracts.CodeInternal {
			return e.failJSON(asJSON, wrap(exitIO, "witness state", err), nil)
		}
		return e.failJSON(asJSON, wrap(exitFailed, "not cosigned", err), nil)
	}
	cosigned := audit.AddCosignatures(cp.Note, lines)
	if *out != "" {
		if err := writeFileAtomic(*out, cosigned, 0o644); err != nil {
			return wrap(exitIO, "cannot write the checkpoint", err)
		}
	}
	return e.emit(asJSON, map[string]any{"ok": true, "origin": cp.Origin, "size": cp.Size, "old_size": oldSize, "checkpoint": string(cosigned)}, func(o io.Writer) {
		if *out == "" {
			o.Write(cosigned)
		}
	})
}

func cmdWitnessServe(e *env, args []string) error {
	const syn = "talos witness serve --wallet FILE --name NAME --state FILE --log-key KEY… [--origin ORIGIN] [--listen ADDR]"
	fs := newFlags("witness serve")
	var wf witnessFlags
	wf.register(fs)
	var keys stringList
	fs.Var(&keys, "log-key", "a followed log's C2SP verifier key, or one did:key with --origin (repeatable, required)")
	origin := fs.String("origin", "", "the origin of a log given by did:key")
	listen := fs.String("listen", "127.0.0.1:7380", "address to serve POST /add-checkpoint on")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("witness serve takes no arguments")
	}
	if err := wf.check(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return usageError("need at least one --log-key")
	}
	var logs []note.Verifier
	for _, s := range keys {
		k, err := parseLogKey(s, *origin)
		if err != nil {
			return err
		}
		if k.v == nil && *origin == "" {
			return usageError("a did:key --log-key needs --origin")
		}
		v, err := k.verifier(nil)
		if err != nil {
			return usageError("bad --log-key %q: %v", s, err)
		}
		logs = append(logs, v)
	}
	w, err := e.newWitness(wf, logs)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return wrap(exitIO, "cannot listen", err)
	}
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	url := "http://" + ln.Addr().String() + "/add-checkpoint"
	fmt.Fprintf(e.stderr, "talos: witness %s listening on %s\n", wf.name, url)
	if jsonOut(fs) {
		if err := e.emit(true, map[string]any{"ok": true, "name": wf.name, "url": url}, nil); err != nil {
			ln.Close()
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return wrap(exitIO, "server stopped", err)
	case <-e.ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	for _, sv := range w.SplitViews() {
		fmt.Fprintf(e.stderr, "talos: refused a split view of %s at sizes %d and %d\n", sv.A.Origin, sv.A.Size, sv.B.Size)
	}
	return nil
}
