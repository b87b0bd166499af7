package a2a

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
)

// A ListQuery selects relay objects for the admin lists: up to Limit
// objects whose id is after After (byte order), or, when ID is set, that
// object only (NOT_FOUND when there is none).
type ListQuery struct {
	After string
	Limit int
	ID    string
}

// SessionInfo is a session with what the store knows of its history: its
// event chain head as stored and the number of frames relayed.
type SessionInfo struct {
	Session *Session
	Head    ChainHead
	Frames  int64
}

// GroupInfo is a group with its event chain head as stored.
type GroupInfo struct {
	Group *Group
	Head  ChainHead
}

// A Lister is a [Store] that lists its sessions and groups for the admin
// API. MemStore and gateway/a2a/postgres.Store are Listers.
type Lister interface {
	ListSessions(ctx context.Context, q ListQuery) ([]SessionInfo, error)
	ListGroups(ctx context.Context, q ListQuery) ([]GroupInfo, error)
}

// Limits of the admin lists.
const (
	DefaultAdminPage = httpx.DefaultPageLimit
	MaxAdminPage     = httpx.MaxPageLimit
	// maxAdminID bounds an id in a path or a cursor.
	maxAdminID = 256
)

// AdminList serves the relay's sessions and groups to operators: metadata
// only (ids, participants, state, counts, times, the event chain head and
// whether the chain verifies), never frames, ratchet state or payloads.
// Build it with [NewAdminList] and mount it with [AdminList.Register].
type AdminList struct {
	store Store
	list  Lister
}

// NewAdminList returns the admin lists over store, which must be a [Lister].
func NewAdminList(store Store) (*AdminList, error) {
	l, ok := store.(Lister)
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: the relay store cannot list sessions and groups")
	}
	return &AdminList{store: store, list: l}, nil
}

// Register mounts, each behind authorize (the admin.a2a read grant; nil
// refuses every request):
//
//	GET /v1/admin/a2a/sessions?limit=&cursor=   sessions by id
//	GET /v1/admin/a2a/sessions/{id}
//	GET /v1/admin/a2a/groups?limit=&cursor=     groups by id
//	GET /v1/admin/a2a/groups/{id}
//
// Pages are {"items": [...], "next_cursor": "..."} (next_cursor absent on
// the last page); limit is 1..500 (default 100), cursor the opaque
// next_cursor. Errors are the contract error body.
func (l *AdminList) Register(mux *http.ServeMux, authorize func(http.HandlerFunc) http.HandlerFunc) {
	if authorize == nil {
		authorize = func(http.HandlerFunc) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "admin credential required"))
			}
		}
	}
	sessionID := func(si SessionInfo) string { return si.Session.SessionID }
	groupID := func(gi GroupInfo) string { return gi.Group.GroupID }
	mux.HandleFunc("GET /v1/admin/a2a/sessions", authorize(listPage(l.list.ListSessions, sessionID, l.sessionItem)))
	mux.HandleFunc("GET /v1/admin/a2a/sessions/{id}", authorize(getOne(l.list.ListSessions, l.sessionItem, "session")))
	mux.HandleFunc("GET /v1/admin/a2a/groups", authorize(listPage(l.list.ListGroups, groupID, l.groupItem)))
	mux.HandleFunc("GET /v1/admin/a2a/groups/{id}", authorize(getOne(l.list.ListGroups, l.groupItem, "group")))
}

// SessionItem is one session of the admin list.
type SessionItem struct {
	ID           string   `json:"id"`
	SessionID    string   `json:"session_id"`
	Participants []string `json:"participants"`
	InitiatorID  string   `json:"initiator_id"`
	ResponderID  string   `json:"responder_id"`
	State        string   `json:"state"`
	CreatedAt    string   `json:"created_at"`
	UpdatedAt    string   `json:"updated_at"`
	ExpiresAt    string   `json:"expires_at,omitempty"`
	FrameCount   int64    `json:"frame_count"`
	ChainInfo
}

// GroupItem is one group of the admin list.
type GroupItem struct {
	ID           string   `json:"id"`
	GroupID      string   `json:"group_id"`
	OwnerID      string   `json:"owner_id"`
	Members      []string `json:"members"`
	Participants []string `json:"participants"`
	MemberCount  int      `json:"member_count"`
	State        string   `json:"state"`
	CreatedAt    string   `json:"created_at"`
	UpdatedAt    string   `json:"updated_at"`
	ChainInfo
}

// ChainInfo is an object's event chain as checked by the admin list: the
// head and length the store holds, and whether the stored events verify
// from the genesis (every digest and link recomputed) up to that head.
type ChainInfo struct {
	EventCount    int    `json:"event_count"`
	ChainHead     string `json:"chain_head"`
	ChainVerified bool   `json:"chain_verified"`
}

// chain verifies the events of id against the stored head and returns the
// chain info and the last event's ts ("" without events).
func (l *AdminList) chain(ctx context.Context, spec audit.ChainSpec, id string, head ChainHead) (ChainInfo, string, error) {
	evs, err := l.store.Events(ctx, id)
	if err != nil {
		return ChainInfo{}, "", err
	}
	info := ChainInfo{EventCount: head.N, ChainHead: head.Head}
	got, verr := audit.VerifyChain(spec, evs)
	info.ChainVerified = verr == nil && len(evs) == head.N && got == head.Head
	last := ""
	if len(evs) > 0 {
		var ts struct {
			TS string `json:"ts"`
		}
		if json.Unmarshal(evs[len(evs)-1], &ts) == nil {
			last = ts.TS
		}
	}
	return info, last, nil
}

func (l *AdminList) sessionItem(ctx context.Context, si SessionInfo) (SessionItem, error) {
	s := si.Session
	info, last, err := l.chain(ctx, audit.SessionEventChain, s.SessionID, si.Head)
	if err != nil {
		return SessionItem{}, err
	}
	if last == "" {
		last = s.CreatedAt
	}
	return SessionItem{
		ID: s.SessionID, SessionID: s.SessionID, Participants: []string{s.InitiatorID, s.ResponderID},
		InitiatorID: s.InitiatorID, ResponderID: s.ResponderID, State: s.State,
		CreatedAt: s.CreatedAt, UpdatedAt: last, ExpiresAt: s.ExpiresAt, FrameCount: si.Frames, ChainInfo: info,
	}, nil
}

func (l *AdminList) groupItem(ctx context.Context, gi GroupInfo) (GroupItem, error) {
	g := gi.Group
	info, last, err := l.chain(ctx, audit.GroupEventChain, g.GroupID, gi.Head)
	if err != nil {
		return GroupItem{}, err
	}
	if last == "" {
		last = g.CreatedAt
	}
	members := g.SortedMembers()
	return GroupItem{
		ID: g.GroupID, GroupID: g.GroupID, OwnerID: g.OwnerID, Members: members, Participants: members,
		MemberCount: len(members), State: g.State, CreatedAt: g.CreatedAt, UpdatedAt: last, ChainInfo: info,
	}, nil
}

// Page is the body of a list.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// parsePage reads ?limit= and ?cursor= (httpx.ParsePage) and refuses any
// other parameter.
func parsePage(r *http.Request) (ListQuery, error) {
	q := r.URL.Query()
	for k := range q {
		if k != "limit" && k != "cursor" {
			return ListQuery{}, contracts.New(contracts.CodeInvalidInput, "query parameters are one limit and one cursor")
		}
	}
	after, _, limit, err := httpx.ParsePage(q, maxAdminID)
	return ListQuery{Limit: limit, After: after}, err
}

func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxAdminID {
		return "", contracts.New(contracts.CodeInvalidInput, "bad id")
	}
	return id, nil
}

// listPage answers a list request: one page of the store's rows (one more
// is read to know whether a next page exists), each turned into an item.
func listPage[R, I any](list func(context.Context, ListQuery) ([]R, error), id func(R) string,
	item func(context.Context, R) (I, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parsePage(r)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		limit := q.Limit
		q.Limit++
		rows, err := list(r.Context(), q)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		page := Page[I]{Items: []I{}}
		for i, row := range rows {
			if i == limit {
				page.NextCursor = httpx.PageCursor(id(rows[limit-1]))
				break
			}
			it, err := item(r.Context(), row)
			if err != nil {
				talos.WriteError(w, r, err)
				return
			}
			page.Items = append(page.Items, it)
		}
		writeAdminJSON(w, page)
	}
}

// getOne answers a request for the row {id}; what names it in a 404.
func getOne[R, I any](list func(context.Context, ListQuery) ([]R, error),
	item func(context.Context, R) (I, error), what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathID(r)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		rows, err := list(r.Context(), ListQuery{ID: id, Limit: 1})
		if err == nil && len(rows) == 0 {
			err = ErrNotFound(what)
		}
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		it, err := item(r.Context(), rows[0])
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		writeAdminJSON(w, it)
	}
}

func writeAdminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, v)
}
