package audit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// An Anchor publishes a log's checkpoints to a party outside the log's
// control (a witness, a transparency service) and returns its cosignature
// lines. oldSize is the size the caller believes the anchor last saw, and
// proof the consistency proof from it to cp. An anchor that saw another
// size returns a *[SizeMismatchError] with it, so the caller can retry.
type Anchor interface {
	Anchor(ctx context.Context, oldSize uint64, proof tlog.TreeProof, cp Checkpoint) (cosignatures []byte, err error)
}

// A SizeMismatchError reports that an anchor's latest checkpoint of the log
// has another size than the caller assumed (tlog-witness 409 Conflict).
type SizeMismatchError struct {
	Latest uint64
}

func (e *SizeMismatchError) Error() string {
	return "audit: anchor has seen size " + strconv.FormatUint(e.Latest, 10)
}

// A SplitViewError holds two signed checkpoints of one log that cannot both
// be honest: same origin and size with different roots, or a larger one
// that is not consistent with a smaller one. Both notes are evidence of
// the log's misbehaviour and should be published.
type SplitViewError struct {
	A, B Checkpoint
}

func (e *SplitViewError) Error() string {
	return "audit: split view of " + e.A.Origin + " at sizes " +
		strconv.FormatUint(e.A.Size, 10) + " and " + strconv.FormatUint(e.B.Size, 10)
}

// Is makes errors.Is(err, ErrSplitView) true.
func (e *SplitViewError) Is(target error) bool { return target == ErrSplitView }

// Unwrap returns ErrSplitView, so that contracts.CodeOf and errors.As see
// the error's contract code.
func (e *SplitViewError) Unwrap() error { return ErrSplitView }

// ErrSplitView matches every *SplitViewError. It is a contracts.Sentinel
// (errors.As finds a *contracts.Error) with code TALOS_CRYPTO_ERROR, which a *SplitViewError also carries
// (contracts.CodeOf).
var ErrSplitView = contracts.NewSentinel(contracts.CodeCryptoError, "audit: split view")

// DetectSplitView compares two verified checkpoints of one log. Of equal
// size, their roots must match; otherwise proof must show that the larger
// extends the smaller. It returns a *SplitViewError when they conflict.
func DetectSplitView(a, b Checkpoint, proof tlog.TreeProof) error {
	if a.Origin != b.Origin {
		return contracts.New(contracts.CodeInvalidInput, "audit: checkpoints of different logs")
	}
	older, newer := a, b
	if older.Size > newer.Size {
		older, newer = newer, older
	}
	if err := VerifyConsistency(proof, older, newer); err != nil {
		return &SplitViewError{A: older, B: newer}
	}
	return nil
}

// ---- cosignatures (C2SP tlog-cosignature, Ed25519)

// cosignedMessage is "cosignature/v1\ntime <t>\n" followed by the note body.
func cosignedMessage(t uint64, body []byte) []byte {
	m := make([]byte, 0, 32+len(body))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	return append(m, body...)
}

type cosigner struct {
	name string
	hash uint32
	s    crypto.Signer
	now  func() time.Time
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Sign(msg []byte) ([]byte, error) {
	t := uint64(c.now().Unix())
	sig, err := c.s.Sign(nil, cosignedMessage(t, msg), crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint64(nil, t), sig...), nil
}

// NewCosigner returns a note.Signer that produces C2SP tlog-cosignature/v1
// Ed25519 cosignatures (key id algorithm 0x04, timestamped signature) with
// s, an Ed25519 crypto.Signer. now is the clock (time.Now if nil).
func NewCosigner(name string, s crypto.Signer, now func() time.Time) (note.Signer, error) {
	pub, err := ed25519Public(s)
	if err != nil {
		return nil, err
	}
	if !validKeyName(name) {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: invalid cosigner name")
	}
	if now == nil {
		now = time.Now
	}
	return &cosigner{name: name, hash: keyHash(name, algCosignature, pub), s: s, now: now}, nil
}

type cosigVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	seen *uint64 // if set, receives the timestamp of a verified cosignature
}

func (v *cosigVerifier) Name() string    { return v.name }
func (v *cosigVerifier) KeyHash() uint32 { return v.hash }
func (v *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	ok := ed25519.Verify(v.pub, cosignedMessage(t, msg), sig[8:])
	if ok && v.seen != nil {
		*v.seen = t
	}
	return ok
}

// NewCosignatureVerifier returns the note.Verifier of an Ed25519 cosigner.
func NewCosignatureVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	if len(pub) != ed25519.PublicKeySize || !validKeyName(name) {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: invalid cosigner key")
	}
	return &cosigVerifier{name: name, hash: keyHash(name, algCosignature, pub), pub: pub}, nil
}

// VerifyCosigned opens a checkpoint note that must carry a valid log
// signature and a valid cosignature of the given cosigner. It returns the
// checkpoint and the cosignature time.
func VerifyCosigned(msg []byte, logKey note.Verifier, cosignerName string, cosignerPub ed25519.PublicKey) (Checkpoint, time.Time, error) {
	v, err := NewCosignatureVerifier(cosignerName, cosignerPub)
	if err != nil {
		return Checkpoint{}, time.Time{}, err
	}
	var seen uint64
	cv := v.(*cosigVerifier)
	cv.seen = &seen
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, time.Time{}, cpError("too large")
	}
	n, err := note.Open(msg, note.VerifierList(logKey, cv))
	if err != nil {
		return Checkpoint{}, time.Time{}, contracts.Wrap(contracts.CodeCryptoError, "audit: checkpoint: signature does not verify", err)
	}
	var logSig, cosig bool
	for _, s := range n.Sigs {
		logSig = logSig || (s.Name == logKey.Name() && s.Hash == logKey.KeyHash())
		cosig = cosig || (s.Name == cv.Name() && s.Hash == cv.KeyHash())
	}
	if !logSig || !cosig {
		return Checkpoint{}, time.Time{}, cpError("missing log signature or cosignature")
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, time.Time{}, err
	}
	if c.Origin != logKey.Name() {
		return Checkpoint{}, time.Time{}, cpError("origin does not match the log key name")
	}
	c.Note = append([]byte(nil), msg...)
	return c, time.Unix(int64(seen), 0).UTC(), nil
}

// ---- witness

// WitnessConfig configures a [Witness].
type WitnessConfig struct {
	// Name is the witness's key name (a schema-less URL). Required.
	Name string
	// Signer is the witness's Ed25519 key (an identity.Wallet's Signer).
	// Use a key that signs nothing else. Required.
	Signer crypto.Signer
	// Logs are the verifiers of the logs the witness follows, by origin
	// (the verifier's name). Required.
	Logs []note.Verifier
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// State persists the latest cosigned checkpoint of each log, so that a
	// restarted witness still refuses forks. If nil, a [MemWitnessStore]:
	// the witness forgets everything when the process ends.
	State WitnessStore
}

// A WitnessStore persists a witness's latest cosigned checkpoint note per
// log origin. Implementations must be safe for concurrent use.
type WitnessStore interface {
	// Latest returns the stored note for origin, or ErrNotFound.
	Latest(ctx context.Context, origin string) ([]byte, error)
	// Swap stores next for origin if the stored note is prev (nil: none);
	// otherwise it stores nothing and returns an error.
	Swap(ctx context.Context, origin string, prev, next []byte) error
}

// MemWitnessStore is the in-memory WitnessStore. It is safe for concurrent
// use.
type MemWitnessStore struct {
	mu    sync.Mutex // guards notes
	notes map[string][]byte
}

// NewMemWitnessStore returns an empty store.
func NewMemWitnessStore() *MemWitnessStore {
	return &MemWitnessStore{notes: map[string][]byte{}}
}

// Latest implements WitnessStore.
func (m *MemWitnessStore) Latest(ctx context.Context, origin string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.notes[origin]
	if !ok {
		return nil, NotFound("no checkpoint cosigned for this log")
	}
	return append([]byte(nil), n...), nil
}

// Swap implements WitnessStore.
func (m *MemWitnessStore) Swap(ctx context.Context, origin string, prev, next []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.notes[origin]; ok != (prev != nil) || !bytes.Equal(cur, prev) {
		return storeError("witness state changed concurrently", nil)
	}
	m.notes[origin] = append([]byte(nil), next...)
	return nil
}

// A Witness cosigns checkpoints of the logs it follows, only when they are
// consistent with the latest checkpoint it cosigned for that log: it never
// cosigns two views of one log. A Witness is safe
// for concurrent use; [Witness.Handler] serves the C2SP tlog-witness
// add-checkpoint endpoint. Its memory of each log is its [WitnessStore]; a
// store that cannot answer makes it refuse to cosign.
type Witness struct {
	signer note.Signer
	logs   map[string]note.Verifier
	state  WitnessStore

	mu     sync.Mutex // serializes AddCheckpoint; guards splits
	splits []*SplitViewError
}

// NewWitness validates cfg and returns a witness with no history.
func NewWitness(cfg WitnessConfig) (*Witness, error) {
	if cfg.Signer == nil || len(cfg.Logs) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: WitnessConfig.Signer and Logs are required")
	}
	s, err := NewCosigner(cfg.Name, cfg.Signer, cfg.Now)
	if err != nil {
		return nil, err
	}
	w := &Witness{signer: s, logs: map[string]note.Verifier{}, state: cfg.State}
	if w.state == nil {
		w.state = NewMemWitnessStore()
	}
	for _, v := range cfg.Logs {
		w.logs[v.Name()] = v
	}
	return w, nil
}

// Errors of [Witness.AddCheckpoint] besides *SizeMismatchError and
// *SplitViewError.
var (
	// ErrUnknownLog: the checkpoint's origin is not a followed log (404).
	ErrUnknownLog = contracts.NewSentinel(contracts.CodeNotFound, "")
)

// AddCheckpoint verifies a checkpoint note of a followed log and the
// consistency proof from oldSize, which must be the size of the latest
// checkpoint the witness cosigned for that log (0 at first), and returns
// its cosignature line. It refuses (and records) a checkpoint that
// conflicts with what it cosigned before.
func (w *Witness) AddCheckpoint(ctx context.Context, oldSize uint64, proof tlog.TreeProof, msg []byte) ([]byte, error) {
	origin, err := noteOrigin(msg)
	if err != nil {
		return nil, err
	}
	v, ok := w.logs[origin]
	if !ok {
		return nil, contracts.New(contracts.CodeNotFound, "audit: witness does not follow this log")
	}
	cp, err := OpenCheckpoint(msg, v)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prevNote, err := w.state.Latest(ctx, origin)
	seen := err == nil
	if err != nil && contracts.CodeOf(err) != contracts.CodeNotFound {
		return nil, err // fail closed: never cosign without the history
	}
	var prev Checkpoint
	if seen {
		if prev, err = OpenCheckpoint(prevNote, v); err != nil {
			return nil, storeError("witness state holds an invalid checkpoint", err)
		}
	}
	if seen && oldSize != prev.Size || !seen && oldSize != 0 {
		return nil, &SizeMismatchError{Latest: prev.Size}
	}
	if cp.Size < oldSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: checkpoint smaller than the old size")
	}
	if seen {
		if err := VerifyConsistency(proof, prev, cp); err != nil {
			split := &SplitViewError{A: prev, B: cp}
			if len(w.splits) < MaxWitnessSplits {
				w.splits = append(w.splits, split)
			}
			return nil, split
		}
	} else if len(proof) != 0 {
		return nil, cpError("proof from the empty tree must be empty")
	}
	signed, err := note.Sign(&note.Note{Text: string(cp.Body())}, w.signer)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "audit: cannot cosign", err)
	}
	var prevArg []byte
	if seen {
		prevArg = prevNote
	}
	if err := w.state.Swap(ctx, origin, prevArg, cp.Note); err != nil {
		return nil, err
	}
	return signatureLines(signed), nil
}

// SplitViews returns the conflicting checkpoints the witness refused.
func (w *Witness) SplitViews() []*SplitViewError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*SplitViewError(nil), w.splits...)
}

// Latest returns the latest checkpoint cosigned for origin.
func (w *Witness) Latest(ctx context.Context, origin string) (Checkpoint, bool) {
	v, ok := w.logs[origin]
	if !ok {
		return Checkpoint{}, false
	}
	n, err := w.state.Latest(ctx, origin)
	if err != nil {
		return Checkpoint{}, false
	}
	cp, err := OpenCheckpoint(n, v)
	return cp, err == nil
}

// noteOrigin reads the first line of a note without trusting it.
func noteOrigin(msg []byte) (string, error) {
	if len(msg) > MaxCheckpointSize {
		return "", cpError("too large")
	}
	i := bytes.IndexByte(msg, '\n')
	if i <= 0 {
		return "", cpError("no origin line")
	}
	return string(msg[:i]), nil
}

// signatureLines returns the signature lines of a signed note.
func signatureLines(signed []byte) []byte {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	return append([]byte(nil), signed[i+2:]...)
}

// AddCosignatures appends cosignature lines to a signed checkpoint note.
func AddCosignatures(signedNote, lines []byte) []byte {
	out := append([]byte(nil), signedNote...)
	return append(out, lines...)
}

// ---- tlog-witness HTTP shape

// Handler serves POST /add-checkpoint of C2SP tlog-witness: the body is
// "old <size>\n", the consistency proof (one base64 hash a line), an empty
// line, and the checkpoint note. Answers: 200 with the cosignature line;
// 409 with Content-Type text/x.tlog.size and the witness's latest size;
// 404 unknown log; 403 bad signature; 422 proof does not verify (a split
// view); 400 malformed request.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxWitnessRequest+1))
		if err != nil || len(body) > MaxWitnessRequest {
			http.Error(rw, "request too large", http.StatusBadRequest)
			return
		}
		oldSize, proof, msg, err := ParseAddCheckpoint(body)
		if err != nil {
			http.Error(rw, "malformed request", http.StatusBadRequest)
			return
		}
		lines, err := w.AddCheckpoint(r.Context(), oldSize, proof, msg)
		var mismatch *SizeMismatchError
		switch {
		case err == nil:
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Write(lines)
		case errors.As(err, &mismatch):
			rw.Header().Set("Content-Type", "text/x.tlog.size")
			rw.WriteHeader(http.StatusConflict)
			io.WriteString(rw, strconv.FormatUint(mismatch.Latest, 10)+"\n")
		case errors.Is(err, ErrSplitView):
			http.Error(rw, "consistency proof does not verify", http.StatusUnprocessableEntity)
		case contracts.CodeOf(err) == contracts.CodeNotFound:
			http.Error(rw, "unknown log", http.StatusNotFound)
		case contracts.CodeOf(err) == contracts.CodeCryptoError:
			http.Error(rw, "checkpoint signature does not verify", http.StatusForbidden)
		default:
			http.Error(rw, "bad request", http.StatusBadRequest)
		}
	})
	return mux
}

// FormatAddCheckpoint encodes a tlog-witness add-checkpoint request body.
func FormatAddCheckpoint(oldSize uint64, proof tlog.TreeProof, signedNote []byte) []byte {
	var b bytes.Buffer
	b.WriteString("old " + strconv.FormatUint(oldSize, 10) + "\n")
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteByte('\n')
	b.Write(signedNote)
	return b.Bytes()
}

// ParseAddCheckpoint decodes a tlog-witness add-checkpoint request body.
// Every accepted body re-encodes to itself with [FormatAddCheckpoint].
func ParseAddCheckpoint(body []byte) (oldSize uint64, proof tlog.TreeProof, msg []byte, err error) {
	bad := func(m string) (uint64, tlog.TreeProof, []byte, error) {
		return 0, nil, nil, contracts.New(contracts.CodeInvalidInput, "audit: add-checkpoint: "+m)
	}
	if len(body) > MaxWitnessRequest {
		return bad("too large")
	}
	i := bytes.IndexByte(body, '\n')
	if i < 0 {
		return bad("first line must be old <size>")
	}
	first := string(body[:i])
	num, ok := strings.CutPrefix(first, "old ")
	if !ok {
		return bad("first line must be old <size>")
	}
	n, perr := strconv.ParseUint(num, 10, 63)
	if perr != nil || strconv.FormatUint(n, 10) != num {
		return bad("bad old size")
	}
	off := len(first) + 1
	for {
		if off >= len(body) {
			return bad("missing checkpoint")
		}
		j := bytes.IndexByte(body[off:], '\n')
		if j < 0 {
			return bad("unterminated line")
		}
		line := body[off : off+j]
		off += j + 1
		if len(line) == 0 {
			break
		}
		if len(proof) == MaxProofHashes {
			return bad("proof too long")
		}
		h, derr := base64.StdEncoding.Strict().DecodeString(string(line))
		if derr != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != string(line) {
			return bad("bad proof hash")
		}
		proof = append(proof, tlog.Hash(h))
	}
	msg = body[off:]
	if len(msg) == 0 {
		return bad("missing checkpoint")
	}
	return n, proof, msg, nil
}

// HTTPAnchor submits checkpoints to a tlog-witness endpoint.
type HTTPAnchor struct {
	// URL of the witness's add-checkpoint endpoint. Required.
	URL string
	// Client is the HTTP client. If nil, http.DefaultClient.
	Client *http.Client
}

var _ Anchor = (*HTTPAnchor)(nil)
var _ Anchor = (*Witness)(nil)

// Anchor implements [Anchor] for a local witness.
func (w *Witness) Anchor(ctx context.Context, oldSize uint64, proof tlog.TreeProof, cp Checkpoint) ([]byte, error) {
	return w.AddCheckpoint(ctx, oldSize, proof, cp.Note)
}

// Anchor implements [Anchor] over HTTP.
func (a *HTTPAnchor) Anchor(ctx context.Context, oldSize uint64, proof tlog.TreeProof, cp Checkpoint) ([]byte, error) {
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(FormatAddCheckpoint(oldSize, proof, cp.Note)))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: bad witness URL", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeTransportError, "audit: witness unreachable", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxWitnessResponse+1))
	if err != nil || len(body) > MaxWitnessResponse {
		return nil, contracts.New(contracts.CodeTransportError, "audit: bad witness response")
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusConflict:
		s := strings.TrimSuffix(string(body), "\n")
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return nil, contracts.New(contracts.CodeTransportError, "audit: bad witness conflict response")
		}
		return nil, &SizeMismatchError{Latest: n}
	case http.StatusUnprocessableEntity:
		return nil, &SplitViewError{B: cp}
	}
	return nil, contracts.New(contracts.CodeTransportError, "audit: witness answered "+strconv.Itoa(resp.StatusCode))
}

// AnchorCheckpoint submits the log's current checkpoint to a, starting
// from the size the anchor last saw (knownSize, 0 if unknown) and retrying
// once with the size the anchor reports on a mismatch. It returns the
// checkpoint with the cosignature lines appended to its note.
func (l *Log) AnchorCheckpoint(ctx context.Context, a Anchor, knownSize uint64) (Checkpoint, error) {
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	for attempt := 0; ; attempt++ {
		proof, err := l.ConsistencyProof(ctx, min(knownSize, cp.Size), cp.Size)
		if err != nil {
			return Checkpoint{}, err
		}
		lines, err := a.Anchor(ctx, knownSize, proof, cp)
		var mismatch *SizeMismatchError
		if errors.As(err, &mismatch) && attempt == 0 && mismatch.Latest <= cp.Size {
			knownSize = mismatch.Latest
			continue
		}
		if err != nil {
			return Checkpoint{}, err
		}
		cp.Note = AddCosignatures(cp.Note, lines)
		return cp, nil
	}
}
