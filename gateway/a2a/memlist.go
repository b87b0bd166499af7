package a2a

import (
	"context"
	"sort"
)

var _ Lister = (*MemStore)(nil)

// ListSessions implements [Lister].
func (m *MemStore) ListSessions(_ context.Context, q ListQuery) ([]SessionInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := idsOf(q, m.sessions)
	out := make([]SessionInfo, 0, len(ids))
	for _, id := range ids {
		out = append(out, SessionInfo{
			Session: cloneSession(m.sessions[id]),
			Head:    ChainHead{Head: m.heads[id], N: len(m.chains[id])},
			Frames:  int64(len(m.frames[id])),
		})
	}
	return out, nil
}

// ListGroups implements [Lister].
func (m *MemStore) ListGroups(_ context.Context, q ListQuery) ([]GroupInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := idsOf(q, m.groups)
	out := make([]GroupInfo, 0, len(ids))
	for _, id := range ids {
		out = append(out, GroupInfo{Group: m.groups[id].Clone(), Head: ChainHead{Head: m.heads[id], N: len(m.chains[id])}})
	}
	return out, nil
}

// idsOf selects the ids of q among the keys of objects.
func idsOf[T any](q ListQuery, objects map[string]T) []string {
	if q.ID != "" {
		if _, ok := objects[q.ID]; ok {
			return []string{q.ID}
		}
		return nil
	}
	ids := make([]string, 0, min(len(objects), max(q.Limit, 0)))
	for id := range objects {
		if id > q.After {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > q.Limit {
		ids = ids[:max(q.Limit, 0)]
	}
	return ids
}
