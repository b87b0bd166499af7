package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// BundleSchemaVersion is the metadata.schema_version of the bundles this
// package writes.
const BundleSchemaVersion = "talos.evidence_bundle.v1+tlog"

// An EvidenceBundle is a portable, offline-verifiable export of a range of
// events. Its shape is the contract evidence_bundle.schema.json (metadata,
// events with id/timestamp/cursor, integrity_summary) extended with what
// makes it verifiable: each event's sealed bytes, leaf index and inclusion
// proof, and the signed checkpoint they are proven against.
type EvidenceBundle struct {
	Metadata     BundleMetadata   `json:"metadata"`
	Events       []BundleEvent    `json:"events"`
	Integrity    BundleIntegrity  `json:"integrity_summary"`
	Transparency BundleCheckpoint `json:"transparency"`
}

// BundleMetadata is the contract metadata member.
type BundleMetadata struct {
	SchemaVersion  string            `json:"schema_version"`
	GeneratedAt    string            `json:"generated_at"`
	Source         map[string]string `json:"source"`
	RedactionLevel string            `json:"redaction_level"`
	CursorRange    *CursorRange      `json:"cursor_range,omitempty"`
}

// CursorRange is the contract cursor_range.
type CursorRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// A BundleEvent is one event: the contract fields (id, timestamp in Unix
// seconds, cursor) plus the proof material.
type BundleEvent struct {
	ID        string          `json:"id"`
	Timestamp int64           `json:"timestamp"`
	Cursor    string          `json:"cursor"`
	Index     uint64          `json:"index"`
	Event     json.RawMessage `json:"event"`
	Proof     []string        `json:"inclusion_proof"`
}

// BundleIntegrity is the contract integrity_summary.
type BundleIntegrity struct {
	TotalEvents      int    `json:"total_events"`
	CursorContinuity string `json:"cursor_continuity"`
}

// BundleCheckpoint carries the signed checkpoint the proofs verify against.
type BundleCheckpoint struct {
	Origin     string `json:"origin"`
	Checkpoint string `json:"checkpoint"`
}

// BundleOptions are the caller's metadata for [Log.ExportBundle].
type BundleOptions struct {
	// Source is the contract metadata.source; "dashboard_version" is set
	// to "talos-go" if absent (the schema requires it).
	Source map[string]string
	// RedactionLevel is none, safe_default or strict. If empty, "none".
	RedactionLevel string
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
}

// ExportBundle exports the entries [start, end) with inclusion proofs
// against a freshly signed checkpoint. The range is contiguous, so
// cursor_continuity is VERIFIED by construction and checked again by
// [VerifyBundle].
func (l *Log) ExportBundle(ctx context.Context, start, end uint64, opt BundleOptions) ([]byte, error) {
	if end <= start || end-start > MaxBundleEvents {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: bundle range empty or too large")
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if end > cp.Size {
		return nil, NotFound("bundle range beyond the log")
	}
	es, err := l.cfg.Store.ReadEntries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	if uint64(len(es)) != end-start {
		return nil, storeError("store returned the wrong number of entries", nil)
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	src := map[string]string{"dashboard_version": "talos-go"}
	for k, v := range opt.Source {
		src[k] = v
	}
	level := opt.RedactionLevel
	if level == "" {
		level = "none"
	}
	b := EvidenceBundle{
		Metadata: BundleMetadata{SchemaVersion: BundleSchemaVersion,
			GeneratedAt: now().UTC().Format(TimeFormat), Source: src, RedactionLevel: level},
		Integrity:    BundleIntegrity{TotalEvents: len(es), CursorContinuity: "VERIFIED"},
		Transparency: BundleCheckpoint{Origin: cp.Origin, Checkpoint: string(cp.Note)},
	}
	for i, e := range es {
		idx := start + uint64(i)
		pos, _, _, _, err := QueryFields(e)
		if err != nil {
			return nil, err
		}
		cur, err := pos.Encode()
		if err != nil {
			return nil, storeError("stored event has no cursor", err)
		}
		p, err := l.InclusionProof(ctx, idx, cp.Size)
		if err != nil {
			return nil, err
		}
		be := BundleEvent{ID: pos.EventID, Timestamp: pos.Timestamp, Cursor: cur, Index: idx, Event: e}
		for _, h := range p {
			be.Proof = append(be.Proof, base64.StdEncoding.EncodeToString(h[:]))
		}
		b.Events = append(b.Events, be)
	}
	b.Metadata.CursorRange = &CursorRange{Start: b.Events[0].Cursor, End: b.Events[len(b.Events)-1].Cursor}
	// No HTML escaping: the sealed event bytes must stay byte-exact.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "audit: cannot encode bundle", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// VerifyBundle verifies an evidence bundle offline with only the log's
// verifier: the checkpoint signature, every event (schema, event_hash, its
// contract fields and cursor), every inclusion proof, and that the indexes
// are contiguous (no event was removed from the range). It returns the
// events in bundle order and the checkpoint. Errors are *contracts.Error.
//
// Only what it returns is authenticated: the events (by their inclusion
// proofs) and the checkpoint (by its signature). The bundle's descriptive
// metadata (source, redaction level, generated_at, the summary of the range)
// is not signed by the log and is not checked; rely on the returned events
// and checkpoint, never on those members.
func VerifyBundle(raw []byte, v note.Verifier) ([]*Event, Checkpoint, error) {
	if len(raw) > MaxBundleSize {
		return nil, Checkpoint{}, contracts.New(contracts.CodeInvalidInput, "audit: bundle too large")
	}
	if err := contracts.CheckJSON(raw, false); err != nil {
		return nil, Checkpoint{}, err
	}
	var b EvidenceBundle
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, Checkpoint{}, contracts.Wrap(contracts.CodeInvalidInput, "audit: malformed bundle", err)
	}
	cp, err := OpenCheckpoint([]byte(b.Transparency.Checkpoint), v)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if len(b.Events) == 0 || len(b.Events) > MaxBundleEvents || b.Integrity.TotalEvents != len(b.Events) {
		return nil, Checkpoint{}, contracts.New(contracts.CodeInvalidInput, "audit: bundle event count is wrong")
	}
	out := make([]*Event, 0, len(b.Events))
	for i, be := range b.Events {
		if i > 0 && be.Index != b.Events[i-1].Index+1 {
			return nil, Checkpoint{}, cpError("bundle indexes are not contiguous")
		}
		e, err := ParseEvent(be.Event)
		if err != nil {
			return nil, Checkpoint{}, err
		}
		pos, _, _, _, err := QueryFields(be.Event)
		if err != nil {
			return nil, Checkpoint{}, err
		}
		cur, err := pos.Encode()
		if err != nil || be.ID != e.EventID || be.Timestamp != pos.Timestamp || be.Cursor != cur {
			return nil, Checkpoint{}, contracts.New(contracts.CodeInvalidInput, "audit: bundle event fields do not match the event")
		}
		if len(be.Proof) > MaxProofHashes {
			return nil, Checkpoint{}, cpError("proof too long")
		}
		proof := make(tlog.RecordProof, len(be.Proof))
		for j, s := range be.Proof {
			h, err := base64.StdEncoding.Strict().DecodeString(s)
			if err != nil || len(h) != tlog.HashSize {
				return nil, Checkpoint{}, cpError("bad proof hash")
			}
			proof[j] = tlog.Hash(h)
		}
		if err := VerifyInclusion(proof, cp, be.Index, LeafHash(be.Event)); err != nil {
			return nil, Checkpoint{}, err
		}
		out = append(out, e)
	}
	return out, cp, nil
}
