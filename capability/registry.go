package capability

import (
	"strconv"

	"github.com/talosgo/talos/contracts"
)

// A ToolClass says whether an action only reads or may write.
type ToolClass uint8

// Tool classes. The zero ToolClass is invalid.
const (
	ClassRead ToolClass = iota + 1
	ClassWrite
)

func (c ToolClass) String() string {
	switch c {
	case ClassRead:
		return "read"
	case ClassWrite:
		return "write"
	}
	return "invalid"
}

// A ToolEntry classifies one tool action. In the contract registry
// (schemas/mcp/tool_registry.json) Tool is tool_server and Action is
// tool_name.
type ToolEntry struct {
	Tool   string
	Action string
	Class  ToolClass
	// RequiresIdempotencyKey is true for every write (the contract requires
	// it) and may be set for reads.
	RequiresIdempotencyKey bool
}

// A ToolRegistry classifies tool actions as read or write. A [Verifier]
// configured with one denies actions it does not list (UNKNOWN_TOOL) and
// write actions under a read-only token (SCOPE_MISMATCH). It is immutable
// and safe for concurrent use.
type ToolRegistry struct {
	tools map[string]map[string]ToolEntry
	n     int
}

// NewToolRegistry builds a registry. Duplicate (tool, action) pairs, empty
// names, invalid classes and writes without RequiresIdempotencyKey are
// errors with code TALOS_INVALID_INPUT.
func NewToolRegistry(entries []ToolEntry) (*ToolRegistry, error) {
	if len(entries) > MaxRegistryTools {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "capability: tool registry too large")
	}
	r := &ToolRegistry{tools: make(map[string]map[string]ToolEntry)}
	for i, e := range entries {
		bad := ""
		switch {
		case e.Tool == "" || e.Action == "" || len(e.Tool) > MaxNameLength || len(e.Action) > MaxNameLength:
			bad = "tool and action must be 1 to 256 bytes"
		case e.Class != ClassRead && e.Class != ClassWrite:
			bad = "class must be read or write"
		case e.Class == ClassWrite && !e.RequiresIdempotencyKey:
			bad = "a write tool must require an idempotency key"
		}
		if bad != "" {
			return nil, contracts.Errorf(contracts.CodeInvalidInput, "capability: tool registry entry "+strconv.Itoa(i)+": "+bad)
		}
		m := r.tools[e.Tool]
		if m == nil {
			m = make(map[string]ToolEntry)
			r.tools[e.Tool] = m
		}
		if _, dup := m[e.Action]; dup {
			return nil, contracts.Errorf(contracts.CodeInvalidInput, "capability: tool registry lists "+strconv.Quote(e.Tool+"/"+e.Action)+" twice")
		}
		m[e.Action] = e
		r.n++
	}
	return r, nil
}

// ParseToolRegistry reads the contract registry document
// ({registry_version, generated_at, tools:[{tool_server, tool_name,
// tool_class, requires_idempotency_key, ...}]}). Only the fields it needs
// are interpreted; the document must be valid JSON under the canonical
// input rules. Errors have code TALOS_INVALID_INPUT.
func ParseToolRegistry(raw []byte) (*ToolRegistry, error) {
	var doc struct {
		RegistryVersion string `json:"registry_version"`
		Tools           []struct {
			Server string `json:"tool_server"`
			Name   string `json:"tool_name"`
			Class  string `json:"tool_class"`
			Idem   *bool  `json:"requires_idempotency_key"`
		} `json:"tools"`
	}
	if err := contracts.CheckJSON(raw, false); err != nil {
		return nil, err
	}
	if err := jsonUnmarshal(raw, &doc); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "capability: tool registry: "+err.Error(), err)
	}
	if doc.RegistryVersion == "" {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "capability: tool registry lacks registry_version")
	}
	if len(doc.Tools) > MaxRegistryTools {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "capability: tool registry too large")
	}
	entries := make([]ToolEntry, 0, len(doc.Tools))
	for i, t := range doc.Tools {
		var c ToolClass
		switch t.Class {
		case "read":
			c = ClassRead
		case "write":
			c = ClassWrite
		}
		if t.Idem == nil {
			return nil, contracts.Errorf(contracts.CodeInvalidInput, "capability: tool registry entry "+strconv.Itoa(i)+" lacks requires_idempotency_key")
		}
		entries = append(entries, ToolEntry{Tool: t.Server, Action: t.Name, Class: c, RequiresIdempotencyKey: *t.Idem})
	}
	return NewToolRegistry(entries)
}

// Lookup returns the entry for tool and action. It does not allocate.
func (r *ToolRegistry) Lookup(tool, action string) (ToolEntry, bool) {
	e, ok := r.tools[tool][action]
	return e, ok
}

// Len returns the number of entries.
func (r *ToolRegistry) Len() int { return r.n }
