package capability

import (
	"strconv"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// A ToolClass says whether an action only reads or may write.
type ToolClass uint8

// Tool classes. The zero ToolClass is invalid.
const (
	ClassRead ToolClass = iota + 1
	ClassWrite
)

// String returns "read", "write" or "invalid".
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
	// Doc, when not nil, says where the action's arguments and results
	// carry documents; see ValidateDocWrites.
	Doc *DocSpec
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
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: tool registry too large")
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
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: tool registry entry "+strconv.Itoa(i)+": "+bad)
		}
		m := r.tools[e.Tool]
		if m == nil {
			m = make(map[string]ToolEntry)
			r.tools[e.Tool] = m
		}
		if _, dup := m[e.Action]; dup {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: tool registry lists "+strconv.Quote(e.Tool+"/"+e.Action)+" twice")
		}
		m[e.Action] = e
		r.n++
	}
	return r, nil
}

// ParseToolRegistry reads a tool registry document in either of the two
// forms the contracts use:
//
//   - schemas/mcp/tool_registry.schema.json: {registry_version,
//     generated_at, tools:[{tool_server, tool_name, tool_class,
//     requires_idempotency_key, ...}]}, Tool = tool_server;
//   - the per-server form of test_vectors/mcp/tool_registry_vectors.json:
//     {schema_id:"talos.mcp.tool_registry", schema_version:"v1",
//     server_id, server_version, tools:[{tool_name, tool_class,
//     is_document_op, requires_idempotency_key?, document_spec?}]},
//     Tool = server_id.
//
// Action is tool_name. Classes must be read or write, writes must require
// an idempotency key, document operations need a document_spec with at
// least one pointer, pointers must be absolute JSON pointers and sizes
// non-negative. Errors have code TALOS_INVALID_INPUT.
func ParseToolRegistry(raw []byte) (*ToolRegistry, error) {
	type docSpec struct {
		Write    []string `json:"write_content_pointers"`
		Read     []string `json:"read_content_pointers"`
		Encoding string   `json:"content_encoding"`
		MaxRead  *int64   `json:"max_read_bytes"`
		MaxWrite *int64   `json:"max_write_bytes"`
		MaxBatch *int64   `json:"max_batch_bytes"`
	}
	var doc struct {
		RegistryVersion string `json:"registry_version"`
		SchemaID        string `json:"schema_id"`
		SchemaVersion   string `json:"schema_version"`
		ServerID        string `json:"server_id"`
		Tools           []struct {
			Server  string   `json:"tool_server"`
			Name    string   `json:"tool_name"`
			Class   string   `json:"tool_class"`
			Idem    *bool    `json:"requires_idempotency_key"`
			DocOp   bool     `json:"is_document_op"`
			DocSpec *docSpec `json:"document_spec"`
		} `json:"tools"`
	}
	bad := func(msg string) error {
		return contracts.New(contracts.CodeInvalidInput, "capability: tool registry: "+msg)
	}
	if err := contracts.CheckJSON(raw, false); err != nil {
		return nil, err
	}
	if err := jsonUnmarshal(raw, &doc); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "capability: tool registry: "+err.Error(), err)
	}
	perServer := doc.RegistryVersion == ""
	switch {
	case !perServer && doc.SchemaID != "":
		return nil, bad("mixes the two registry forms")
	case perServer && doc.SchemaID != "talos.mcp.tool_registry":
		return nil, bad("schema_id (or registry_version) missing or wrong")
	case perServer && (doc.SchemaVersion != "v1" || doc.ServerID == ""):
		return nil, bad("schema_version must be v1 and server_id is required")
	}
	if len(doc.Tools) > MaxRegistryTools {
		return nil, bad("too large")
	}
	entries := make([]ToolEntry, 0, len(doc.Tools))
	for i, t := range doc.Tools {
		at := "entry " + strconv.Itoa(i) + ": "
		e := ToolEntry{Tool: t.Server, Action: t.Name}
		if perServer {
			e.Tool = doc.ServerID
		}
		switch t.Class {
		case "read":
			e.Class = ClassRead
		case "write":
			e.Class = ClassWrite
		default:
			return nil, bad(at + "tool_class must be read or write")
		}
		switch {
		case t.Idem != nil:
			e.RequiresIdempotencyKey = *t.Idem
		case !perServer:
			return nil, bad(at + "lacks requires_idempotency_key")
		}
		if t.DocOp || t.DocSpec != nil {
			ds := t.DocSpec
			if ds == nil {
				return nil, bad(at + "document operation without document_spec")
			}
			if len(ds.Write)+len(ds.Read) == 0 {
				return nil, bad(at + "document_spec names no content pointer")
			}
			for _, p := range append(append([]string(nil), ds.Write...), ds.Read...) {
				if !strings.HasPrefix(p, "/") {
					return nil, bad(at + "content pointer " + strconv.Quote(p) + " is not an absolute JSON pointer")
				}
			}
			for _, n := range []*int64{ds.MaxRead, ds.MaxWrite, ds.MaxBatch} {
				if n != nil && *n < 0 {
					return nil, bad(at + "negative size limit")
				}
			}
			if ds.Encoding != "utf8" && ds.Encoding != "base64" {
				return nil, bad(at + "content_encoding must be utf8 or base64")
			}
			e.Doc = &DocSpec{WriteContentPointers: ds.Write, ReadContentPointers: ds.Read, ContentEncoding: ds.Encoding}
			if ds.MaxWrite != nil {
				e.Doc.MaxWriteBytes = int(*ds.MaxWrite)
			}
			if ds.MaxRead != nil {
				e.Doc.MaxReadBytes = int(*ds.MaxRead)
			}
		}
		entries = append(entries, e)
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
