package mcp

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzVerifyTrace: stored trace records are outside bytes (a database, a
// file): verifyTrace refuses bad ones with a contract error, never panics,
// and accepts only what the audit package's TGA verifiers accept.
func FuzzVerifyTrace(f *testing.F) {
	f.Add([]byte(`{"seq":1}`), []byte(`{}`))
	f.Add([]byte(`{"schema_id":"talos.tga.execution_log_entry","trace_id":"t","seq":1,"from_state":"PENDING","to_state":"PENDING","artifact_type":"action_request","prev_entry_digest":"0000000000000000000000000000000000000000000000000000000000000000","entry_digest":"x","artifact_data":{"_digest":"y"}}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		id := "01936a8b-4c2d-7000-8001-000000000001"
		recs := []TraceRecord{{TraceID: id, Seq: 1, Entry: a}, {TraceID: id, Seq: 2, Entry: b}}
		for _, n := range []int{1, 2} {
			tr, err := verifyTrace(id, recs[:n])
			if err != nil {
				if contracts.CodeOf(err) == "" {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			if tr.m.Seq() != int64(n) || len(tr.artifacts) != n {
				t.Fatalf("accepted %d entries as seq %d with %d artifacts", n, tr.m.Seq(), len(tr.artifacts))
			}
		}
	})
}

// FuzzFileTraceStoreOpen: a trace file of any content opens or is refused
// with an error; it never panics, and what opens loads.
func FuzzFileTraceStoreOpen(f *testing.F) {
	good, _ := json.Marshal(TraceRecord{TraceID: "01936a8b-4c2d-7000-8001-000000000001", Seq: 1, State: "PENDING", Entry: []byte(`{}`)})
	f.Add(append(good, '\n'))
	f.Add(good)
	f.Add([]byte("{\"trace_id\":\"01936a8b-4c2d-7000-8001-000000000001\",\"seq\":2}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		id := "01936a8b-4c2d-7000-8001-000000000001"
		if err := os.WriteFile(filepath.Join(dir, id+".jsonl"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFileTraceStore(dir)
		if err != nil {
			return
		}
		if recs, err := s.Load(t.Context(), id); err == nil {
			for i, r := range recs {
				if r.Seq != int64(i)+1 || r.TraceID != id {
					t.Fatalf("loaded %+v", recs)
				}
			}
		}
	})
}

// FuzzParseListPage: any query is a page or TALOS_INVALID_INPUT.
func FuzzParseListPage(f *testing.F) {
	f.Add("limit=10&cursor=" + Cursor("01936a8b-4c2d-7000-8001-000000000001"))
	f.Add("limit=0")
	f.Add("cursor=%%%")
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("GET", "/v1/admin/approvals", nil)
		r.URL.RawQuery = q
		after, limit, err := ParseListPage(r)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v", err)
			}
			return
		}
		if limit < 1 || limit > MaxListLimit || len(after) > 256 {
			t.Fatalf("page %q %d", after, limit)
		}
	})
}
