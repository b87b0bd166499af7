package a2a

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
	"github.com/talosgo/talos/ratchet"
)

// maxFramesPage bounds one frame listing.
const maxFramesPage = 100

// RelayConfig configures a [Relay].
type RelayConfig struct {
	// Store keeps sessions, groups, events and frames. Required.
	Store Store
	// Wrap wraps every relay route; normally the Wrap method of the
	// server's talos.Kernel middleware (Kernel.Middleware), which verifies
	// the attestation, rate-limits per principal and appends one audit
	// event per request with the status the handler answered. Required:
	// the relay's handlers trust the principal the wrapper attested.
	Wrap func(http.Handler) http.Handler
	// Principal returns the actor of an attested request, false when it
	// has none (the request is answered AUTH_INVALID). If nil, the
	// attested did:key (talos.PrincipalFrom).
	Principal func(*http.Request) (string, bool)
	// Now returns the time. If nil, time.Now.
	Now func() time.Time
}

// Relay is the A2A REST surface of the contracts: sessions (create,
// accept, rotate, close), frames (send, list with cursor) and groups
// (create, add and remove members, close). Every request is HTTP-attested;
// the attested principal is the actor. Ratchet state blobs are stored
// opaque: the relay checks their digest and never decrypts them. Frames
// are checked for their contract digests and the sender_seq rule
// ([CheckSenderSeq]), never opened. Session and group events are
// hash-chained (previous_digest). Sessions are visible to their two
// participants and groups to their members only; to anyone else they do
// not exist (NOT_FOUND).
type Relay struct {
	cfg   RelayConfig
	store Store
}

// NewRelay checks cfg and returns the relay.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Store == nil || cfg.Wrap == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: RelayConfig.Store and Wrap are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Principal == nil {
		cfg.Principal = func(r *http.Request) (string, bool) {
			d, ok := talos.PrincipalFrom(r.Context())
			return d.String(), ok
		}
	}
	return &Relay{cfg: cfg, store: cfg.Store}, nil
}

// RelayRoute is one attested route of the relay.
type RelayRoute struct{ Pattern, Opcode string }

// RelayRoutes lists the relay's routes and their attestation opcodes.
var RelayRoutes = []RelayRoute{
	{"POST /a2a/sessions", "a2a.session.create"},
	{"POST /a2a/sessions/{id}/accept", "a2a.session.accept"},
	{"POST /a2a/sessions/{id}/rotate", "a2a.session.rotate"},
	{"DELETE /a2a/sessions/{id}", "a2a.session.close"},
	{"GET /a2a/sessions/{id}", "a2a.session.get"},
	{"GET /a2a/sessions/{id}/events", "a2a.session.events"},
	{"POST /a2a/sessions/{id}/frames", "a2a.frame.send"},
	{"GET /a2a/sessions/{id}/frames", "a2a.frame.list"},
	{"POST /a2a/groups", "a2a.group.create"},
	{"POST /a2a/groups/{id}/members", "a2a.group.member.add"},
	{"DELETE /a2a/groups/{id}/members/{member}", "a2a.group.member.remove"},
	{"DELETE /a2a/groups/{id}", "a2a.group.close"},
	{"GET /a2a/groups/{id}/events", "a2a.group.events"},
}

// RelayTalosRoutes returns [RelayRoutes] as AttestOnly routes for the
// server's talos.RouteTable (the handlers check participation themselves).
func RelayTalosRoutes() []talos.Route {
	out := make([]talos.Route, 0, len(RelayRoutes))
	for _, rt := range RelayRoutes {
		out = append(out, talos.Route{Pattern: rt.Pattern, Opcode: rt.Opcode, AttestOnly: true})
	}
	return out
}

// Mount registers every relay route on mux, each wrapped by cfg.Wrap.
func (a *Relay) Mount(mux *http.ServeMux) {
	handlers := map[string]func(http.ResponseWriter, *http.Request, string){
		"a2a.session.create": a.createSession, "a2a.session.accept": a.acceptSession,
		"a2a.session.rotate": a.rotateSession, "a2a.session.close": a.closeSession,
		"a2a.session.get": a.getSession, "a2a.session.events": a.sessionEvents,
		"a2a.frame.send": a.sendFrame, "a2a.frame.list": a.listFrames,
		"a2a.group.create": a.createGroup, "a2a.group.member.add": a.addMember,
		"a2a.group.member.remove": a.removeMember, "a2a.group.close": a.closeGroup,
		"a2a.group.events": a.groupEvents,
	}
	for _, rt := range RelayRoutes {
		h := handlers[rt.Opcode]
		mux.Handle(rt.Pattern, a.cfg.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := a.cfg.Principal(r)
			if !ok || p == "" {
				talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "unknown principal"))
				return
			}
			h(w, r, p)
		})))
	}
}

// readValidated reads a body of at most httpx.MaxBody bytes, validates it
// against the contract schema and decodes it strictly into v.
func readValidated(w http.ResponseWriter, r *http.Request, schema string, v any) error {
	if err := httpx.DecodeJSON(w, r, v); err != nil {
		return err
	}
	raw, _ := json.Marshal(v)
	if err := contracts.Validate(schema, raw); err != nil {
		return err
	}
	return nil
}

func (a *Relay) ts() string { return a.cfg.Now().UTC().Format(audit.TimeFormat) }

// blobDigest checks ratchet_state_digest = hex(sha256(blob)).
func blobDigest(b64u, digest string) ([]byte, error) {
	blob, err := contracts.DecodeBase64URL(b64u)
	if err != nil || len(blob) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "ratchet_state_blob_b64u must be non-empty base64url")
	}
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != digest {
		return nil, contracts.New(contracts.CodeInvalidInput, "ratchet_state_digest does not match the blob")
	}
	return blob, nil
}

// sealEvent seals a session or group event onto the chain (spec) whose
// head is h.
func sealEvent(spec audit.ChainSpec, h ChainHead, ev map[string]any) (json.RawMessage, string, error) {
	var ch *audit.Chain
	if h.N == 0 {
		ch = audit.NewChain(spec)
	} else {
		var err error
		if ch, err = audit.ResumeChain(spec, h.Head, h.N); err != nil {
			return nil, "", err
		}
	}
	sealed, digest, err := ch.Seal(ev)
	return sealed, digest, err
}

func (a *Relay) sessionEvent(sessionID, actor, typ string) map[string]any {
	return map[string]any{
		"schema_id": "talos.a2a.session_event", "schema_version": "v1", "event_id": contracts.NewUUIDv7(),
		"session_id": sessionID, "actor_id": actor, "event_type": typ, "ts": a.ts(),
	}
}

func (a *Relay) groupEvent(groupID, actor, typ, target string) map[string]any {
	ev := map[string]any{
		"schema_id": "talos.a2a.group_event", "schema_version": "v1", "event_id": contracts.NewUUIDv7(),
		"group_id": groupID, "actor_id": actor, "event_type": typ, "ts": a.ts(),
	}
	if target != "" {
		ev["target_id"] = target
	}
	return ev
}

type sessionCreateRequest struct {
	SchemaID           string `json:"schema_id"`
	SchemaVersion      string `json:"schema_version"`
	ResponderID        string `json:"responder_id"`
	RatchetStateBlob   string `json:"ratchet_state_blob_b64u"`
	RatchetStateDigest string `json:"ratchet_state_digest"`
	ExpiresAt          string `json:"expires_at,omitempty"`
}

type sessionStateRequest struct {
	SchemaID           string `json:"schema_id"`
	SchemaVersion      string `json:"schema_version"`
	RatchetStateBlob   string `json:"ratchet_state_blob_b64u"`
	RatchetStateDigest string `json:"ratchet_state_digest"`
}

// sessionView is a session as returned to a participant: the contract
// object and the latest opaque ratchet state blob.
type sessionView struct {
	*Session
	RatchetStateBlob string `json:"ratchet_state_blob_b64u,omitempty"`
}

func view(s *Session) sessionView {
	return sessionView{Session: s, RatchetStateBlob: contracts.EncodeBase64URL(s.RatchetStateBlob)}
}

func (a *Relay) createSession(w http.ResponseWriter, r *http.Request, p string) {
	var req sessionCreateRequest
	if err := readValidated(w, r, "a2a/session_create_request", &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	blob, err := blobDigest(req.RatchetStateBlob, req.RatchetStateDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if req.ResponderID == p {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "responder_id must differ from the initiator"))
		return
	}
	if req.ExpiresAt != "" {
		exp, err := time.Parse(audit.TimeFormat, req.ExpiresAt)
		if err != nil || !exp.After(a.cfg.Now()) {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "expires_at must be a future time"))
			return
		}
	}
	s := &Session{
		SchemaID: "talos.a2a.session", SchemaVersion: "v1", SessionID: contracts.NewUUIDv7(),
		InitiatorID: p, ResponderID: req.ResponderID, State: "pending",
		RatchetStateDigest: req.RatchetStateDigest, CreatedAt: a.ts(), ExpiresAt: req.ExpiresAt, RatchetStateBlob: blob,
	}
	ev, digest, err := sealEvent(audit.SessionEventChain, ChainHead{}, a.sessionEvent(s.SessionID, p, "session_opened"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := a.store.CreateSession(r.Context(), s, ev, digest); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, view(s))
}

// transition applies a state change by an allowed actor and chains its event.
func (a *Relay) transition(w http.ResponseWriter, r *http.Request, p string, schema, evType string,
	allowed func(s *Session, actor string) error, apply func(s *Session, req *sessionStateRequest) error) {
	var req sessionStateRequest
	if schema != "" {
		if err := readValidated(w, r, schema, &req); err != nil {
			talos.WriteError(w, r, err)
			return
		}
	}
	s, err := a.store.UpdateSession(r.Context(), r.PathValue("id"), func(s *Session, h ChainHead) (*Session, json.RawMessage, string, error) {
		if err := allowed(s, p); err != nil {
			return nil, nil, "", err
		}
		if err := apply(s, &req); err != nil {
			return nil, nil, "", err
		}
		ev, digest, err := sealEvent(audit.SessionEventChain, h, a.sessionEvent(s.SessionID, p, evType))
		return s, ev, digest, err
	})
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, view(s))
}

func errState(msg string) error { return contracts.New(contracts.CodeStateInvalidTransition, msg) }

// expired reports whether s has an expires_at that has passed. An expired
// session takes no accept, rotation or frame; it can still be closed.
func (a *Relay) expired(s *Session) bool {
	if s.ExpiresAt == "" {
		return false
	}
	exp, err := time.Parse(audit.TimeFormat, s.ExpiresAt)
	return err != nil || !a.cfg.Now().Before(exp)
}

// Access to a session is reported as not found to non-participants, so that
// session ids cannot be probed.
func participant(s *Session, actor string) error {
	if actor != s.InitiatorID && actor != s.ResponderID {
		return ErrNotFound("session")
	}
	return nil
}

// participantSession loads the session named in the path for one of its
// participants; to anyone else it does not exist.
func (a *Relay) participantSession(r *http.Request, p string) (*Session, error) {
	s, err := a.store.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if err := participant(s, p); err != nil {
		return nil, err
	}
	return s, nil
}

func setBlob(s *Session, req *sessionStateRequest) error {
	blob, err := blobDigest(req.RatchetStateBlob, req.RatchetStateDigest)
	if err != nil {
		return err
	}
	s.RatchetStateBlob, s.RatchetStateDigest = blob, req.RatchetStateDigest
	return nil
}

func (a *Relay) acceptSession(w http.ResponseWriter, r *http.Request, p string) {
	a.transition(w, r, p, "a2a/session_accept_request", "session_accepted",
		func(s *Session, actor string) error {
			if err := participant(s, actor); err != nil {
				return err
			}
			if actor != s.ResponderID {
				return contracts.New(contracts.CodeDenied, "only the responder accepts a session")
			}
			if s.State != "pending" {
				return errState("session is not pending")
			}
			if a.expired(s) {
				return errState("session expired")
			}
			return nil
		},
		func(s *Session, req *sessionStateRequest) error { s.State = "active"; return setBlob(s, req) })
}

func (a *Relay) rotateSession(w http.ResponseWriter, r *http.Request, p string) {
	a.transition(w, r, p, "a2a/session_rotate_request", "session_rotated",
		func(s *Session, actor string) error {
			if err := participant(s, actor); err != nil {
				return err
			}
			if s.State != "active" {
				return errState("session is not active")
			}
			if a.expired(s) {
				return errState("session expired")
			}
			return nil
		}, setBlob)
}

func (a *Relay) closeSession(w http.ResponseWriter, r *http.Request, p string) {
	a.transition(w, r, p, "", "session_closed",
		func(s *Session, actor string) error {
			if err := participant(s, actor); err != nil {
				return err
			}
			if s.State == "closed" {
				return errState("session is closed")
			}
			return nil
		},
		func(s *Session, _ *sessionStateRequest) error { s.State = "closed"; return nil })
}

func (a *Relay) getSession(w http.ResponseWriter, r *http.Request, p string) {
	s, err := a.participantSession(r, p)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, view(s))
}

func (a *Relay) sessionEvents(w http.ResponseWriter, r *http.Request, p string) {
	s, err := a.participantSession(r, p)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	evs, err := a.store.Events(r.Context(), s.SessionID)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": evs})
}

type frameSendRequest struct {
	SchemaID      string          `json:"schema_id"`
	SchemaVersion string          `json:"schema_version"`
	Frame         json.RawMessage `json:"frame"`
}

// sendFrame accepts an encrypted frame from a participant of an active
// session: the frame must name this session and the attested sender, its
// digests must verify, and its sender_seq must follow the rules (an
// identical resend answers 200 and stores nothing).
func (a *Relay) sendFrame(w http.ResponseWriter, r *http.Request, p string) {
	var req frameSendRequest
	if err := httpx.DecodeJSON(w, r, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if req.SchemaID != "talos.a2a.frame_send_request" || req.SchemaVersion != "v1" {
		talos.WriteError(w, r, contracts.New(contracts.CodeSchemaValidationError, "not a frame_send_request v1"))
		return
	}
	f, err := ratchet.ParseFrame(req.Frame)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := f.Verify(); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	s, err := a.participantSession(r, p)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if f.SessionID != s.SessionID || f.SenderID != p {
		talos.WriteError(w, r, contracts.New(contracts.CodeFrameInvalid, "frame session_id or sender_id does not match"))
		return
	}
	if s.State != "active" {
		talos.WriteError(w, r, errState("session is not active"))
		return
	}
	if a.expired(s) {
		talos.WriteError(w, r, errState("session expired"))
		return
	}
	raw, err := f.MarshalJSON()
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	dup, err := a.store.PutFrame(r.Context(), f, raw)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	status := http.StatusCreated
	if dup {
		status = http.StatusOK
	}
	httpx.WriteJSON(w, status, map[string]any{
		"frame_digest": f.FrameDigest, "sender_seq": f.SenderSeq, "duplicate": dup,
	})
}

// EncodeFrameCursor returns the frame list cursor of arrival position pos
// ("f" + the position, base64url encoded), as next_cursor carries it.
func EncodeFrameCursor(pos uint64) string {
	return contracts.EncodeBase64URL([]byte("f" + strconv.FormatUint(pos, 10)))
}

func decodeFrameCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := contracts.DecodeBase64URL(s)
	if err == nil && len(b) > 1 && len(b) < 22 && b[0] == 'f' {
		if n, err := strconv.ParseUint(string(b[1:]), 10, 63); err == nil && strconv.FormatUint(n, 10) == string(b[1:]) {
			return n, nil
		}
	}
	return 0, contracts.New(contracts.CodeInvalidInput, "invalid cursor")
}

func (a *Relay) listFrames(w http.ResponseWriter, r *http.Request, p string) {
	s, err := a.participantSession(r, p)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	after, err := decodeFrameCursor(r.URL.Query().Get("cursor"))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	limit := maxFramesPage
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxFramesPage {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 100"))
			return
		}
		limit = n
	}
	frames, last, err := a.store.ListFrames(r.Context(), s.SessionID, after, limit)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	body := map[string]any{"frames": append([]json.RawMessage{}, frames...)}
	if len(frames) == limit {
		body["next_cursor"] = EncodeFrameCursor(last)
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

type groupCreateRequest struct {
	SchemaID      string `json:"schema_id"`
	SchemaVersion string `json:"schema_version"`
	Name          string `json:"name,omitempty"`
}

type groupMemberAddRequest struct {
	SchemaID      string `json:"schema_id"`
	SchemaVersion string `json:"schema_version"`
	MemberID      string `json:"member_id"`
}

type groupView struct {
	*Group
	Members []string `json:"members"`
}

func (a *Relay) createGroup(w http.ResponseWriter, r *http.Request, p string) {
	var req groupCreateRequest
	if err := readValidated(w, r, "a2a/group_create_request", &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	g := &Group{
		SchemaID: "talos.a2a.group", SchemaVersion: "v1", GroupID: contracts.NewUUIDv7(), OwnerID: p,
		State: "active", CreatedAt: a.ts(), Members: map[string]bool{p: true},
	}
	ev, digest, err := sealEvent(audit.GroupEventChain, ChainHead{}, a.groupEvent(g.GroupID, p, "group_created", ""))
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if err := a.store.CreateGroup(r.Context(), g, ev, digest); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, groupView{g, g.SortedMembers()})
}

// changeGroup applies an owner-only change to an active group.
func (a *Relay) changeGroup(w http.ResponseWriter, r *http.Request, p string, evType, target string, apply func(g *Group) error) {
	g, err := a.store.UpdateGroup(r.Context(), r.PathValue("id"), func(g *Group, h ChainHead) (*Group, json.RawMessage, string, error) {
		if !g.Members[p] {
			return nil, nil, "", ErrNotFound("group")
		}
		if g.OwnerID != p {
			return nil, nil, "", contracts.New(contracts.CodeDenied, "only the owner changes a group")
		}
		if g.State != "active" {
			return nil, nil, "", errState("group is closed")
		}
		if err := apply(g); err != nil {
			return nil, nil, "", err
		}
		ev, digest, err := sealEvent(audit.GroupEventChain, h, a.groupEvent(g.GroupID, p, evType, target))
		return g, ev, digest, err
	})
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, groupView{g, g.SortedMembers()})
}

func (a *Relay) addMember(w http.ResponseWriter, r *http.Request, p string) {
	var req groupMemberAddRequest
	if err := readValidated(w, r, "a2a/group_member_add_request", &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	a.changeGroup(w, r, p, "member_added", req.MemberID, func(g *Group) error {
		if g.Members[req.MemberID] {
			return errState("already a member")
		}
		if len(g.Members) >= maxGroupMembers {
			return contracts.New(contracts.CodeInvalidInput, "group is full")
		}
		g.Members[req.MemberID] = true
		return nil
	})
}

// maxGroupMembers bounds a group.
const maxGroupMembers = 1000

func (a *Relay) removeMember(w http.ResponseWriter, r *http.Request, p string) {
	member := r.PathValue("member")
	if member == "" || len(member) > 255 || strings.ContainsAny(member, "\x00") {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "invalid member id"))
		return
	}
	a.changeGroup(w, r, p, "member_removed", member, func(g *Group) error {
		if !g.Members[member] {
			return ErrNotFound("member")
		}
		if member == g.OwnerID {
			return errState("the owner cannot be removed; close the group")
		}
		delete(g.Members, member)
		return nil
	})
}

func (a *Relay) closeGroup(w http.ResponseWriter, r *http.Request, p string) {
	a.changeGroup(w, r, p, "group_closed", "", func(g *Group) error {
		g.State = "closed"
		return nil
	})
}

func (a *Relay) groupEvents(w http.ResponseWriter, r *http.Request, p string) {
	g, err := a.store.GetGroup(r.Context(), r.PathValue("id"))
	if err == nil && !g.Members[p] {
		err = ErrNotFound("group")
	}
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	evs, err := a.store.Events(r.Context(), g.GroupID)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": evs, "members": g.SortedMembers()})
}
