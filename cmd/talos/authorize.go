package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/talosgo/talos/identity"
)

// authorizeOpcode is the attestation opcode of POST /v1/authorize
// (gateway/kernelapi.Opcode).
const authorizeOpcode = "kernel.authorize"

// maxTokenFile bounds a capability token file.
const maxTokenFile = 64 << 10

func cmdAuthorize(e *env, args []string) error {
	const syn = "talos authorize --wallet AGENT-WALLET --tool TOOL --action ACTION [--server URL] [CAPABILITY-FILE|-]"
	fs := newFlags("authorize")
	server := fs.String("server", "", "the Talos server URL (else $"+serverEnv+", else "+defaultServer+")")
	wallet := fs.String("wallet", "", "the agent's wallet: it signs the request (required)")
	tool := fs.String("tool", "", "the tool to ask for (required)")
	action := fs.String("action", "", "the action to ask for (required)")
	var p passFlags
	p.register(fs)
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	if *wallet == "" || *tool == "" || *action == "" {
		return usageError("--wallet, --tool and --action are required")
	}
	asJSON := jsonOut(fs)
	raw, err := e.readInput(arg, maxTokenFile)
	if err != nil {
		return err
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		return usageError("need a capability token (a file, or stdin)")
	}
	base, err := e.serverURL(adminFlags{server: *server})
	if err != nil {
		return err
	}
	w, err := e.loadWallet(*wallet, p)
	if err != nil {
		return err
	}
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err != nil {
		return wrap(exitWallet, "cannot sign with the wallet", err)
	}
	body, _ := json.Marshal(map[string]string{"capability": tok, "tool": *tool, "action": *action})
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, base+"/v1/authorize", bytes.NewReader(body))
	if err != nil {
		return usageError("bad request URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := signer.Sign(req, authorizeOpcode); err != nil {
		return wrap(exitFailed, "cannot sign the request", err)
	}
	c := &adminClient{base: base, client: &http.Client{Timeout: 30 * time.Second}}
	var d struct {
		Allowed        bool   `json:"allowed"`
		Reason         string `json:"reason"`
		Code           string `json:"code,omitempty"`
		CapabilityHash string `json:"capability_hash,omitempty"`
		Principal      string `json:"principal"`
		AuditIndex     uint64 `json:"audit_index"`
	}
	var rawResp json.RawMessage
	if err := c.send(req, &rawResp); err != nil {
		return e.failJSON(asJSON, err, nil)
	}
	if err := json.Unmarshal(rawResp, &d); err != nil {
		return wrap(exitIO, "the server's answer is not a decision", err)
	}
	if asJSON {
		if err := e.printJSON(rawResp); err != nil {
			return err
		}
	} else {
		verdict := "allowed"
		if !d.Allowed {
			verdict = "denied"
		}
		fmt.Fprintf(e.stdout, "%s: %s %s:%s (%s", verdict, safeText(d.Principal), safeText(*tool), safeText(*action), safeText(d.Reason))
		if d.Code != "" {
			fmt.Fprintf(e.stdout, ", %s", safeText(d.Code))
		}
		fmt.Fprintf(e.stdout, "), audit index %d\n", d.AuditIndex)
	}
	if !d.Allowed {
		return &cliError{code: exitFailed, msg: "denied: " + d.Reason}
	}
	return nil
}
