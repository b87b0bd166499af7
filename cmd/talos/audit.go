package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// adminTokenEnv holds the bearer credential sent with --auth's default.
const adminTokenEnv = "TALOS_ADMIN_TOKEN"

// ---- state file: the checkpoints seen before, per log origin

const (
	stateVersion = "talos.audit-state.v1"
	maxStateFile = 1 << 20
)

type stateFile struct {
	Logs    map[string]string `json:"logs"`
	Version string            `json:"version"`
}

// loadState reads a state file of the given version; a missing file is
// an empty state.
func loadState(path, version string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &stateFile{Logs: map[string]string{}, Version: version}, nil
	}
	if err != nil {
		return nil, wrap(exitIO, "cannot read the state file", err)
	}
	if len(b) > maxStateFile {
		return nil, failf(exitIO, "state file %s: too large", path)
	}
	var s stateFile
	if err := contracts.UnmarshalStrict(bytes.TrimSuffix(b, []byte("\n")), &s); err != nil || s.Version != version || s.Logs == nil {
		return nil, failf(exitIO, "state file %s is not a %s file", path, version)
	}
	return &s, nil
}

func (s *stateFile) save(path string) error {
	b, err := contracts.Marshal(s)
	if err != nil {
		return wrap(exitIO, "cannot encode the state", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return wrap(exitIO, "cannot write the state file", err)
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return wrap(exitIO, "cannot write the state file", err)
	}
	return nil
}

func defaultStatePath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "talos", "audit-state.json")
}

// splitViewError reports two checkpoints of one log that cannot both be
// honest, with both notes as evidence.
type splitViewError struct {
	prev, cur audit.Checkpoint
	why       string
}

func (e *splitViewError) Error() string {
	return fmt.Sprintf("split view of %s: %s\n--- checkpoint seen before (size %d):\n%s--- checkpoint now (size %d):\n%s",
		e.cur.Origin, e.why, e.prev.Size, e.prev.Note, e.cur.Size, e.cur.Note)
}

// checkConsistency proves that cur extends prev with hashes from src,
// verified against cur's root.
func checkConsistency(ctx context.Context, src tileSource, prev, cur audit.Checkpoint) error {
	switch {
	case prev.Size == cur.Size:
		if prev.Hash != cur.Hash {
			return &splitViewError{prev, cur, "same size, different roots"}
		}
		return nil
	case prev.Size > cur.Size:
		return &splitViewError{prev, cur, "the log is smaller than before (rolled back)"}
	}
	tr := &tileReader{ctx: ctx, src: src}
	proof, err := tlog.ProveTree(int64(cur.Size), int64(prev.Size), tlog.TileHashReader(cur.Tree(), tr))
	if err != nil {
		if tr.err != nil {
			var ce *cliError
			if errors.As(tr.err, &ce) && ce.code == exitIO {
				return tr.err
			}
		}
		return wrap(exitFailed, "hash tiles do not match the checkpoint", err)
	}
	if err := audit.VerifyConsistency(proof, prev, cur); err != nil {
		return &splitViewError{prev, cur, "the new checkpoint does not extend the old one"}
	}
	return nil
}

// treeCheck is the result of a full pass over the log.
type treeCheck struct {
	entries bool // entry bundles were read and every event checked
	tiles   int  // hash tiles compared
}

// verifyTree reads every tile of the tree in cp (and every entry bundle
// unless hashesOnly), checks every event's event_hash, that the hash tiles
// hold exactly the hashes the entries make, and that the root of the
// leaves is cp's root.
func verifyTree(ctx context.Context, src tileSource, cp audit.Checkpoint, hashesOnly bool, bar *progress) (treeCheck, error) {
	var res treeCheck
	res.entries = !hashesOnly
	n := cp.Size
	var root compactRange
	levels := make([][]tlog.Hash, 1) // levels[L]: hashes of the open tile of level L ≥ 1
	levelN := make([]int64, 1)
	for b := int64(0); uint64(b)*tileWidth < n; b++ {
		w := int(min(uint64(tileWidth), n-uint64(b)*tileWidth))
		tile, tpath, err := hashTile(ctx, src, 0, b, w)
		if err != nil {
			return res, err
		}
		res.tiles++
		leaves := tile
		if !hashesOnly {
			entries, bpath, err := entryBundle(ctx, src, b, w)
			if err != nil {
				return res, err
			}
			leaves = make([]tlog.Hash, w)
			for i, e := range entries {
				idx := uint64(b)*tileWidth + uint64(i)
				if _, err := audit.ParseEvent(e); err != nil {
					return res, failf(exitFailed, "entry %d (%s): %v", idx, bpath, err)
				}
				leaves[i] = audit.LeafHash(e)
				if leaves[i] != tile[i] {
					return res, failf(exitFailed, "entry %d: its leaf hash differs from %s: the entry or the hash tile was changed", idx, tpath)
				}
			}
		}
		for _, h := range leaves {
			root.push(h)
		}
		if w == tileWidth {
			if err := pushLevel(ctx, src, &levels, &levelN, 1, subtreeRoot(leaves), &res); err != nil {
				return res, err
			}
		}
		bar.set(uint64(b)*tileWidth + uint64(w))
	}
	// The open (partial) tiles of the upper levels.
	for l := 1; l < len(levels); l++ {
		if len(levels[l]) == 0 {
			continue
		}
		if err := compareTile(ctx, src, l, levelN[l], levels[l], &res); err != nil {
			return res, err
		}
	}
	if got := root.root(); got != cp.Hash {
		return res, failf(exitFailed, "the tree of the %s has root %v, the checkpoint says %v", map[bool]string{true: "hash tiles", false: "entries"}[hashesOnly], got, cp.Hash)
	}
	return res, nil
}

// pushLevel adds the root of a full tile of level l−1 to level l, and
// checks and carries up a tile that becomes full.
func pushLevel(ctx context.Context, src tileSource, levels *[][]tlog.Hash, levelN *[]int64, l int, h tlog.Hash, res *treeCheck) error {
	for len(*levels) <= l {
		*levels = append(*levels, nil)
		*levelN = append(*levelN, 0)
	}
	(*levels)[l] = append((*levels)[l], h)
	if len((*levels)[l]) < tileWidth {
		return nil
	}
	full := (*levels)[l]
	if err := compareTile(ctx, src, l, (*levelN)[l], full, res); err != nil {
		return err
	}
	r := subtreeRoot(full)
	(*levels)[l] = nil
	(*levelN)[l]++
	return pushLevel(ctx, src, levels, levelN, l+1, r, res)
}

func compareTile(ctx context.Context, src tileSource, l int, n int64, want []tlog.Hash, res *treeCheck) error {
	got, p, err := hashTile(ctx, src, l, n, len(want))
	if err != nil {
		return err
	}
	res.tiles++
	for i := range want {
		if got[i] != want[i] {
			return failf(exitFailed, "%s: hash %d is not the one the level below makes: the tile was changed", p, i)
		}
	}
	return nil
}

// subtreeRoot is the RFC 6962 root of a power-of-two number of hashes.
func subtreeRoot(hs []tlog.Hash) tlog.Hash {
	if len(hs) == 1 {
		return hs[0]
	}
	half := len(hs) / 2
	return tlog.NodeHash(subtreeRoot(hs[:half]), subtreeRoot(hs[half:]))
}

// compactRange computes the RFC 6962 root of leaves pushed in order, in
// O(log n) memory.
type compactRange struct {
	hashes  []tlog.Hash
	heights []int
}

func (c *compactRange) push(h tlog.Hash) {
	height := 0
	for len(c.heights) > 0 && c.heights[len(c.heights)-1] == height {
		top := len(c.hashes) - 1
		h = tlog.NodeHash(c.hashes[top], h)
		c.hashes, c.heights = c.hashes[:top], c.heights[:top]
		height++
	}
	c.hashes = append(c.hashes, h)
	c.heights = append(c.heights, height)
}

// root folds the subtrees right to left; the empty tree's root is
// SHA-256("") (C2SP tlog-checkpoint).
func (c *compactRange) root() tlog.Hash {
	if len(c.hashes) == 0 {
		return sha256.Sum256(nil)
	}
	h := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(c.hashes[i], h)
	}
	return h
}

func cmdAuditVerify(e *env, args []string) error {
	const syn = "talos audit verify --log-key KEY [--origin ORIGIN] [--state FILE | --no-state] [--auth TOKEN] [--hashes-only] [--progress] (DIR | URL)"
	fs := newFlags("audit verify")
	key := fs.String("log-key", "", "the log's public key: a C2SP verifier key (name+hash+key) or a did:key (required)")
	origin := fs.String("origin", "", "the log's origin, with a did:key (default: the checkpoint's origin line)")
	statePath := fs.String("state", defaultStatePath(), "file keeping the last verified checkpoint of each log")
	noState := fs.Bool("no-state", false, "do not read or write a state file (no consistency check with earlier runs)")
	auth := fs.String("auth", "", "bearer credential for entry bundles on a server (default $"+adminTokenEnv+")")
	hashesOnly := fs.Bool("hashes-only", false, "check the checkpoint and hash tiles only, not the entries (they may need a credential)")
	showProgress := fs.Bool("progress", false, "draw a progress bar on stderr even when it is not a terminal")
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
	k, err := parseLogKey(*key, *origin)
	if err != nil {
		return err
	}
	if *noState {
		*statePath = ""
	} else if *statePath == "" {
		return usageError("no default state file location: pass --state FILE or --no-state")
	}
	token := *auth
	if token == "" && (strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://")) {
		token = e.getenv(adminTokenEnv)
	}
	src, err := newSource(arg, token)
	if err != nil {
		return err
	}
	asJSON := jsonOut(fs)
	res, err := e.verifyLog(e.ctx, src, k, *statePath, *hashesOnly, *showProgress || e.stderrTTY)
	if err != nil {
		extra := map[string]any{}
		var sv *splitViewError
		if errors.As(err, &sv) {
			extra["split_view"] = map[string]any{"previous": string(sv.prev.Note), "current": string(sv.cur.Note), "reason": sv.why}
		}
		return e.failJSON(asJSON, err, extra)
	}
	return e.emit(asJSON, res, func(o io.Writer) {
		what := "entries and tree"
		if *hashesOnly {
			what = "hash tiles (entries not read)"
		}
		fmt.Fprintf(o, "ok: %s size %d root %s: checkpoint signature, %s verified\n", res["origin"], res["size"], res["root"], what)
		if c, ok := res["consistent_with"].(uint64); ok {
			fmt.Fprintf(o, "consistent with the checkpoint of size %d seen before\n", c)
		}
		if *statePath == "" {
			fmt.Fprintln(o, "note: no state file, so consistency with earlier checkpoints was not checked")
		}
	})
}

// verifyLog runs the whole check and updates the state file on success.
func (e *env) verifyLog(ctx context.Context, src tileSource, k *logKey, statePath string, hashesOnly, showProgress bool) (map[string]any, error) {
	msg, err := src.read(ctx, "checkpoint", audit.MaxCheckpointSize)
	if errors.Is(err, errTileNotFound) {
		return nil, failf(exitIO, "%s has no checkpoint", src)
	}
	if err != nil {
		return nil, err
	}
	cp, err := k.open(msg)
	if err != nil {
		return nil, err
	}
	res := map[string]any{"ok": true, "origin": cp.Origin, "size": cp.Size, "root": cp.Hash.String(), "entries_checked": !hashesOnly}
	var st *stateFile
	if statePath != "" {
		if st, err = loadState(statePath, stateVersion); err != nil {
			return nil, err
		}
		if prevNote, ok := st.Logs[cp.Origin]; ok {
			prev, err := k.open([]byte(prevNote))
			if err != nil {
				return nil, failf(exitFailed, "the state file's checkpoint of %s does not verify with this key", cp.Origin)
			}
			if err := checkConsistency(ctx, src, prev, cp); err != nil {
				return nil, err
			}
			res["consistent_with"] = prev.Size
		}
	}
	bar := newProgress(e.stderr, showProgress, "entries", cp.Size)
	tc, err := verifyTree(ctx, src, cp, hashesOnly, bar)
	bar.done()
	if err != nil {
		return nil, err
	}
	res["hash_tiles"] = tc.tiles
	if st != nil {
		st.Logs[cp.Origin] = string(cp.Note)
		if err := st.save(statePath); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ---- audit proof

// proofDoc is an inclusion proof as GET /v1/audit/proofs/inclusion of
// examples/server returns it.
type proofDoc struct {
	Index     uint64   `json:"index,omitempty"`
	OldSize   uint64   `json:"old_size,omitempty"`
	TreeSize  uint64   `json:"tree_size"`
	LeafHash  string   `json:"leaf_hash,omitempty"`
	Proof     []string `json:"proof"`
	EntryB64u string   `json:"entry_b64u,omitempty"`
}

func parseProofDoc(b []byte) (*proofDoc, tlog.RecordProof, error) {
	var d proofDoc
	if err := contracts.UnmarshalStrict(b, &d); err != nil {
		return nil, nil, err
	}
	if d.OldSize != 0 {
		return nil, nil, contracts.New(contracts.CodeInvalidInput, "proof: a consistency proof, not an inclusion proof")
	}
	if d.Index >= d.TreeSize {
		return nil, nil, contracts.New(contracts.CodeInvalidInput, "proof: index not below tree_size")
	}
	if len(d.Proof) > 64 {
		return nil, nil, contracts.New(contracts.CodeInvalidInput, "proof: too many hashes")
	}
	p := make(tlog.RecordProof, len(d.Proof))
	for i, s := range d.Proof {
		h, err := tlog.ParseHash(s)
		if err != nil || h.String() != s {
			return nil, nil, contracts.New(contracts.CodeInvalidInput, "proof: bad hash")
		}
		p[i] = h
	}
	return &d, p, nil
}

func cmdAuditProof(e *env, args []string) error {
	const syn = "talos audit proof --log-key KEY [--origin ORIGIN] --checkpoint FILE [PROOF-FILE|-]"
	fs := newFlags("audit proof")
	key := fs.String("log-key", "", "the log's public key: a C2SP verifier key or a did:key (required)")
	origin := fs.String("origin", "", "the log's origin, with a did:key (default: the checkpoint's origin line)")
	cpPath := fs.String("checkpoint", "", "the signed checkpoint note the proof is for (required)")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	if *cpPath == "" {
		return usageError("--checkpoint is required")
	}
	k, err := parseLogKey(*key, *origin)
	if err != nil {
		return err
	}
	asJSON := jsonOut(fs)
	msg, err := e.readInput(*cpPath, audit.MaxCheckpointSize)
	if err != nil {
		return err
	}
	raw, err := e.readInput(arg, 1<<20)
	if err != nil {
		return err
	}
	cp, err := k.open(msg)
	if err != nil {
		return e.failJSON(asJSON, err, nil)
	}
	d, proof, err := parseProofDoc(raw)
	if err != nil {
		return e.failJSON(asJSON, wrap(exitFailed, "not an inclusion proof", err), nil)
	}
	if d.TreeSize != cp.Size {
		return e.failJSON(asJSON, failf(exitFailed, "the proof is for tree size %d, the checkpoint has size %d", d.TreeSize, cp.Size), nil)
	}
	var leaf tlog.Hash
	res := map[string]any{"ok": true, "origin": cp.Origin, "size": cp.Size, "index": d.Index}
	switch {
	case d.EntryB64u != "":
		entry, err := contracts.DecodeBase64URL(d.EntryB64u)
		if err != nil {
			return e.failJSON(asJSON, wrap(exitFailed, "bad entry_b64u", err), nil)
		}
		ev, err := audit.ParseEvent(entry)
		if err != nil {
			return e.failJSON(asJSON, wrap(exitFailed, "the entry is not a valid event", err), nil)
		}
		leaf = audit.LeafHash(entry)
		if d.LeafHash != "" && d.LeafHash != leaf.String() {
			return e.failJSON(asJSON, failf(exitFailed, "leaf_hash is not the hash of the entry"), nil)
		}
		res["event_id"] = ev.EventID
		res["event_hash"] = ev.EventHash
	case d.LeafHash != "":
		if leaf, err = tlog.ParseHash(d.LeafHash); err != nil {
			return e.failJSON(asJSON, wrap(exitFailed, "bad leaf_hash", err), nil)
		}
	default:
		return e.failJSON(asJSON, failf(exitFailed, "the proof has neither entry_b64u nor leaf_hash"), nil)
	}
	if err := audit.VerifyInclusion(proof, cp, d.Index, leaf); err != nil {
		return e.failJSON(asJSON, wrap(exitFailed, fmt.Sprintf("entry %d is not in the checkpoint's tree", d.Index), err), nil)
	}
	res["leaf_hash"] = leaf.String()
	return e.emit(asJSON, res, func(o io.Writer) {
		fmt.Fprintf(o, "ok: entry %d is in %s at size %d\n", d.Index, cp.Origin, cp.Size)
		if id, ok := res["event_id"]; ok {
			fmt.Fprintf(o, "event %s, event_hash %s (recomputed)\n", id, res["event_hash"])
		}
	})
}

// ---- audit bundle verify

// maxBundleFile bounds an evidence bundle read by the CLI.
const maxBundleFile = 1 << 30

func cmdAuditBundleVerify(e *env, args []string) error {
	const syn = "talos audit bundle verify --log-key KEY [--origin ORIGIN] [BUNDLE-FILE|-]"
	fs := newFlags("audit bundle verify")
	key := fs.String("log-key", "", "the log's public key: a C2SP verifier key or a did:key (required)")
	origin := fs.String("origin", "", "the log's origin, with a did:key (default: the bundle checkpoint's origin line)")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	k, err := parseLogKey(*key, *origin)
	if err != nil {
		return err
	}
	asJSON := jsonOut(fs)
	raw, err := e.readInput(arg, maxBundleFile)
	if err != nil {
		return err
	}
	v := k.v
	if v == nil {
		// The origin is needed before VerifyBundle reads the note: take it
		// from the bundle; the key alone is what is trusted.
		var peek struct {
			Transparency audit.BundleCheckpoint `json:"transparency"`
		}
		_ = json.Unmarshal(raw, &peek)
		if v, err = k.verifier([]byte(peek.Transparency.Checkpoint)); err != nil {
			return e.failJSON(asJSON, err, nil)
		}
	}
	events, cp, err := audit.VerifyBundle(raw, v)
	if err != nil {
		return e.failJSON(asJSON, wrap(exitFailed, "the bundle does not verify", err), nil)
	}
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.EventID
	}
	return e.emit(asJSON, map[string]any{"ok": true, "origin": cp.Origin, "size": cp.Size, "root": cp.Hash.String(), "events": len(events), "event_ids": ids}, func(o io.Writer) {
		fmt.Fprintf(o, "ok: %d event(s) proven in %s at size %d (only the events and the checkpoint are authenticated, not the bundle's metadata)\n", len(events), cp.Origin, cp.Size)
	})
}
