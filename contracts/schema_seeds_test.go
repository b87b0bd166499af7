package contracts_test

// schemaSeeds holds, for every embedded schema, documents written for this
// library that the schema (and the contract's own schema) accepts. They cover
// the optional members the reference vectors leave out, seed the mutation
// cross-check against the reference schemas and the fuzz corpus, and are
// checked on their own by TestSchemaSeedsValid.
var schemaSeeds = map[string][]string{
	"capability_token": {
		`{"exp":1767504000,"issuer":"did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG","nonce":"unique-nonce-12345678","scope":[{"actions":["read","write"],"tool":"filesystem"}],"signature":"bFOnXopG1vdRSGkOBE3c5aeS8-UuG84j9JFXUSaIbr7HYwl2oFwu8MtUHkoy88nPSFN3Zx0sXb2xPnX5MxTACQ","subject":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","version":"1.0"}`,
		`{"exp":1767504000,"nbf":1767500000,"issuer":"did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG","nonce":"0123456789abcdef","scope":[],"metadata":{"aud":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","parent":"00"},"signature":"c2ln","subject":"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK","version":"1.0"}`,
	},
	"frame": {
		`{"flags":0,"payload":"dGVzdCBwYXlsb2Fk","type":"DATA","version":1}`,
		`{"payload":"","type":"HANDSHAKE_ACK","version":2,"signature":"c2ln"}`,
	},
	"mcp_payload": {
		`{"action":"read","correlation_id":"corr-456","request":{"method":"read","params":{"path":"/data"}},"session_id":"session-123","timestamp":1767500000,"tool":"filesystem"}`,
	},
	"error": {
		`{"code":"TALOS_DENIED","message":"denied"}`,
		`{"code":"NOT_FOUND","message":"no such session","details":{"session_id":"s"},"request_id":"req-1","cause":"lookup failed"}`,
	},
	"common/errors": {
		`{"code":"TGA_TOKEN_EXPIRED","message":"Capability token has expired","retryable":false}`,
		`{"code":"TALOS_TRANSPORT_TIMEOUT","message":"timeout","retryable":true,"details":{"after_ms":5000},"request_id":"r","cause":"deadline"}`,
	},
	"common/uuidv7": {
		`"01946896-1234-7567-89ab-000000000010"`,
	},
	"audit/audit_event": {
		`{"schema_id":"talos.audit_event","schema_version":"v1","event_id":"01945533-3158-7c85-992d-9865f1715694","ts":"2026-01-11T18:00:00.000Z","request_id":"req-1","surface_id":"llm.chat.completions","outcome":"success","principal":{"auth_mode":"signed","principal_id":"p-1","team_id":"t-1","signer_key_id":"k-1"},"http":{"method":"POST","path":"/v1/chat/completions","status_code":200,"client_ip_hash":"96e042ef289be4f00339127877576f03107d655586247894f506500265754b30","client_ip_hash_alg":"HMAC-SHA256","client_ip_hash_key_id":"ip-key-v1"},"resource":{"resource_type":"model","resource_id":"gpt-4"},"meta":{"model":"gpt-4","tokens":100,"cached":false,"note":null},"event_hash":"6a803fcf7040693958c0de56d3d0359ed16625a7df8e21c76b73626716bdb7f7"}`,
		`{"schema_id":"talos.audit_event","schema_version":"v1","event_id":"01945533-3158-7c85-992d-9865f1715695","ts":"2026-01-11T18:00:01.250Z","request_id":"req-2","surface_id":"health","outcome":"denied","principal":{"auth_mode":"anonymous","principal_id":"anonymous"},"http":{"method":"GET","path":"/health","status_code":403},"meta":{},"event_hash":"0000000000000000000000000000000000000000000000000000000000000000"}`,
		`{"schema_id":"talos.audit_event","schema_version":"v1","event_id":"01945533-3158-7c85-992d-9865f1715696","ts":"2026-01-11T18:00:02.000Z","request_id":"req-3","surface_id":"a2a.sessions.create","outcome":"failure","principal":{"auth_mode":"bearer","principal_id":"p-2","team_id":"t-2"},"http":{"method":"DELETE","path":"/a2a/sessions/{id}","status_code":500},"resource":{},"meta":{"k":1.5},"event_hash":"1111111111111111111111111111111111111111111111111111111111111111"}`,
	},
	"crypto/double_ratchet_header": {
		`{"dh":"ZS08FeNGY32XUEKJQa0P1Wf_skkb4DUGu9Issoincno","n":0,"pn":0}`,
		`{"dh":"e06Qm75__kTEZaIgA31gjuNYl9Me-XLwf3SJLLD3PxM","n":7,"pn":3}`,
	},
	"crypto/double_ratchet_message": {
		`{"ciphertext":"Y3Q","header":{"dh":"ZS08FeNGY32XUEKJQa0P1Wf_skkb4DUGu9Issoincno","n":1,"pn":0},"nonce":"MTExMTExMTExMTEx"}`,
	},
	"crypto/x3dh_prekey_bundle": {
		`{"identity_key":"aWs","signed_prekey":"c3Br","prekey_signature":"c2ln"}`,
		`{"identity_key":"aWs","signed_prekey":"c3Br","prekey_signature":"c2ln","one_time_prekey":"b3Rr"}`,
	},
	"crypto/http_attestation": {
		`{"x_talos_key_id":"did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG","x_talos_timestamp":1700000000,"x_talos_nonce":"test-nonce-123","x_talos_signature":"c2lnbmF0dXJl","x_talos_sig_alg":"ed25519","x_talos_sig_version":"v1"}`,
	},
	"a2a/session": {
		`{"schema_id":"talos.a2a.session","schema_version":"v1","session_id":"01945533-3158-7c85-992d-9865f1715698","initiator_id":"alice","responder_id":"bob","state":"active","ratchet_state_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","created_at":"2026-01-11T18:00:00.000Z","expires_at":"2026-01-12T18:00:00.000Z"}`,
	},
	"a2a/session_event": {
		`{"schema_id":"talos.a2a.session_event","schema_version":"v1","event_id":"01945533-3158-7c85-992d-9865f1715699","session_id":"01945533-3158-7c85-992d-9865f1715698","actor_id":"bob","event_type":"session_rotated","ts":"2026-01-11T18:00:00.000Z","event_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","previous_digest":"a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"}`,
	},
	"a2a/encrypted_frame": {
		`{"schema_id":"talos.a2a.encrypted_frame","schema_version":"v1","session_id":"01945533-3158-7c85-992d-9865f1715698","sender_id":"alice","sender_seq":0,"header_b64u":"eyJkaCI6IngifQ","ciphertext_b64u":"MTExMTExMTExMTExY3Q","frame_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","ciphertext_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","created_at":"2026-01-11T18:00:00.000Z"}`,
	},
	"a2a/frame_send_request": {
		`{"schema_id":"talos.a2a.frame_send_request","schema_version":"v1","frame":{"schema_id":"talos.a2a.encrypted_frame","schema_version":"v1","session_id":"01945533-3158-7c85-992d-9865f1715698","sender_id":"alice","sender_seq":3,"header_b64u":"eyJkaCI6IngifQ","ciphertext_b64u":"MTExMTExMTExMTExY3Q","frame_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","ciphertext_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","created_at":"2026-01-11T18:00:00.000Z"}}`,
	},
	"a2a/session_create_request": {
		`{"schema_id":"talos.a2a.session_create_request","schema_version":"v1","responder_id":"bob","ratchet_state_blob_b64u":"YmxvYg","ratchet_state_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","expires_at":"2026-01-12T18:00:00.000Z"}`,
	},
	"a2a/session_accept_request": {
		`{"schema_id":"talos.a2a.session_accept_request","schema_version":"v1","ratchet_state_blob_b64u":"YmxvYg","ratchet_state_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
	},
	"a2a/session_rotate_request": {
		`{"schema_id":"talos.a2a.session_rotate_request","schema_version":"v1","ratchet_state_blob_b64u":"YmxvYg","ratchet_state_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
	},
	"a2a/group": {
		`{"schema_id":"talos.a2a.group","schema_version":"v1","group_id":"01945533-3158-7c85-992d-9865f1715698","owner_id":"alice","state":"closed","created_at":"2026-01-11T18:00:00.000Z"}`,
	},
	"a2a/group_event": {
		`{"schema_id":"talos.a2a.group_event","schema_version":"v1","event_id":"01945533-3158-7c85-992d-9865f1715699","group_id":"01945533-3158-7c85-992d-9865f1715698","actor_id":"alice","target_id":"carol","event_type":"member_removed","ts":"2026-01-11T18:00:00.000Z","event_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","previous_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
	},
	"a2a/group_create_request": {
		`{"schema_id":"talos.a2a.group_create_request","schema_version":"v1","name":"research"}`,
	},
	"a2a/group_member_add_request": {
		`{"schema_id":"talos.a2a.group_member_add_request","schema_version":"v1","member_id":"carol"}`,
	},
	"rbac/role": {
		`{"schema_id":"talos.rbac.role","schema_version":"v1","role_id":"01945533-3158-7c85-992d-9865f1715698","name":"Team_Admin-1","permissions":["audit:read","*:*","keys:write:own"],"built_in":false,"description":"admins","created_at":"2026-01-11T18:00:00.000Z","updated_at":"2026-01-11T18:00:00.000Z"}`,
	},
	"rbac/binding": {
		`{"schema_id":"talos.rbac.binding","schema_version":"v1","principal_id":"p-1","team_id":"t-1","bindings":[{"binding_id":"b-1","role_id":"r-1","scope":{"scope_type":"repo","attributes":{"repo":"talos","org":"*"}},"created_at":"2026-01-11T18:00:00.000Z"}]}`,
		`{"schema_id":"talos.rbac.binding","schema_version":"v1","principal_id":"p-1","bindings":[]}`,
	},
	"rbac/principal": {
		`{"schema_id":"talos.principal","schema_version":"v2","id":"01945533-3158-7c85-992d-9865f1715698","principal_id":"fp-1","type":"service_account","auth_mode":"signed","status":"suspended","public_key":"cHVi","key_type":"ed25519","email":"ops@example.com","org_id":"01945533-3158-7c85-992d-9865f1715690","display_name":"Ops bot","created_at":"2026-01-11T18:00:00.000Z","revoked_at":null,"team_id":"01945533-3158-7c85-992d-9865f1715699","signer_key_id":"01945533-3158-7c85-992d-9865f1715700"}`,
		`{"schema_id":"talos.principal","schema_version":"v2","id":"01945533-3158-7c85-992d-9865f1715698","principal_id":"p-1","type":"user","auth_mode":"bearer","status":"revoked","revoked_at":"2026-01-11T18:00:00.000Z","team_id":"01945533-3158-7c85-992d-9865f1715699"}`,
	},
	"rbac/org": {
		`{"schema_id":"talos.org","schema_version":"v2","id":"01945533-3158-7c85-992d-9865f1715698","name":"Acme","domain":"acme.com","created_by":"01945533-3158-7c85-992d-9865f1715699","created_at":"2026-01-11T18:00:00.000Z"}`,
	},
	"rbac/team": {
		`{"schema_id":"talos.team","schema_version":"v2","id":"01945533-3158-7c85-992d-9865f1715698","org_id":"01945533-3158-7c85-992d-9865f1715699","name":"Platform","created_at":"2026-01-11T18:00:00.000Z"}`,
	},
	"secrets/envelope": {
		`{"schema_id":"talos.secrets.envelope","schema_version":"v1","kek_id":"kek-1","iv":"e0e1e2e3e4e5e6e7e8e9eaeb","ciphertext":"00ff","tag":"00112233445566778899aabbccddeeff","alg":"aes-256-gcm","created_at":"2026-01-11T18:00:00.000Z"}`,
	},
	"secrets/envelope.v1": {
		`{"kek_id":"v1","nonce_b64u":"MTExMTExMTExMTEx","ciphertext_b64u":"EfwRMzbLmgBthjSVUAfav-cjSjP6M19wBA","tag_b64u":"stYFmi4FzkahBIpIHyvXBA"}`,
	},
	"ai_gateway/budget": {
		`{"id":"b-1","scope_type":"team","scope_id":"t-1","period":"daily","max_usd":12.5,"used_usd":0,"reset_at":"2026-01-12T00:00:00Z"}`,
	},
	"ai_gateway/usage_event": {
		`{"event_id":"e-1","timestamp":"2026-01-11T18:00:00.123Z","key_id":"k-1","team_id":"t-1","org_id":"o-1","surface":"llm","model_group_id":"gpt","mcp_server_id":"m","input_tokens":10,"output_tokens":20,"cost_usd":0.0012,"latency_ms":250,"status":"success"}`,
	},
	"ai_gateway/error": {
		`{"error":{"code":"BUDGET_EXCEEDED","message":"team budget exhausted","type":"insufficient_quota","param":"model"}}`,
	},
	"ai_gateway/virtual_key": {
		`{"id":"vk-1","team_id":"t-1","key_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","scopes":["llm:invoke","mcp:read"],"allowed_model_groups":["gpt"],"allowed_mcp_servers":["github"],"rate_limits":{"rpm":60,"tpm":100000},"budget":{"max_daily_usd":5,"max_monthly_usd":100.5},"expires_at":"2027-01-01T00:00:00Z","revoked":false}`,
	},
	"rbac/permission": {
		`{"id":"perm-1","name":"keys.write","description":"create and rotate keys"}`,
	},
	"tga/v1/action_request": {
		`{"schema_id":"talos.tga.action_request","schema_version":"tga.v1","trace_id":"01946896-1234-7567-89ab-000000000010","plan_id":"01946896-1234-7567-89ab-000000000011","action_request_id":"01946896-1234-7567-89ab-000000000012","agent_id":"01946896-1234-7567-89ab-000000000013","ts":"2026-01-15T14:45:00Z","risk_level":"HIGH_RISK","intent":"Apply security patch to the auth module.","resources":[{"kind":"repo","id":"talos"},{"kind":"db","id":"users"}],"proposal":{"tool_server":"mcp-github","tool_name":"create_branch","args":{"name":"fix"}},"idempotency_key":"01946896-1234-7567-89ab-000000000017","meta":{"k":"v","n":1,"b":true,"z":null},"_digest_alg":"sha256","_digest":"ICQCXHBAPhM4LM_YGr-r138tkWOyOFUIj3rO7FTYz3E"}`,
	},
	"tga/v1/supervisor_decision": {
		`{"schema_id":"talos.tga.supervisor_decision","schema_version":"tga.v1","trace_id":"01946896-1234-7567-89ab-000000000010","plan_id":"01946896-1234-7567-89ab-000000000011","supervisor_decision_id":"01946896-1234-7567-89ab-000000000014","action_request_id":"01946896-1234-7567-89ab-000000000012","action_request_digest":"ICQCXHBAPhM4LM_YGr-r138tkWOyOFUIj3rO7FTYz3E","ts":"2026-01-15T14:50:00.000Z","decision":"APPROVE","rationale":"ok","minted_capability":"ey.ey.sig","meta":{},"_digest_alg":"sha256","_digest":"ZpMFP0UwEhT_Fenqexq31oPHuEiva2jt2b4rkarD568"}`,
	},
	"tga/v1/tool_call": {
		`{"schema_id":"talos.tga.tool_call","schema_version":"tga.v1","trace_id":"01946896-1234-7567-89ab-000000000010","plan_id":"01946896-1234-7567-89ab-000000000011","tool_call_id":"01946896-1234-7567-89ab-000000000015","session_id":"01946896-1234-7567-89ab-000000000016","supervisor_decision_id":"01946896-1234-7567-89ab-000000000014","supervisor_decision_digest":"ZpMFP0UwEhT_Fenqexq31oPHuEiva2jt2b4rkarD568","capability_digest":"ZpMFP0UwEhT_Fenqexq31oPHuEiva2jt2b4rkarD568","args_digest":"ZpMFP0UwEhT_Fenqexq31oPHuEiva2jt2b4rkarD568","ts":"2026-01-15T14:55:00.000Z","call":{"tool_server":"mcp-github","tool_name":"create-branch","args":{"name":"fix"}},"tool_class":"write","expected_document_hashes":[{"pointer":"/body","hash":"ZpMFP0UwEhT_Fenqexq31oPHuEiva2jt2b4rkarD568"}],"batch_total_bytes":12,"idempotency_key":"01946896-1234-7567-89ab-000000000017","meta":{"n":2},"_digest_alg":"sha256","_digest":"SyUlMosb1HkPIR9p6bJwDiVhJh5uOeJCvLa3rjqMGtE"}`,
	},
	"tga/v1/tool_effect": {
		`{"schema_id":"talos.tga.tool_effect","schema_version":"tga.v1","trace_id":"01946896-1234-7567-89ab-000000000010","plan_id":"01946896-1234-7567-89ab-000000000011","tool_effect_id":"01946896-1234-7567-89ab-000000000018","tool_call_id":"01946896-1234-7567-89ab-000000000015","tool_call_digest":"SyUlMosb1HkPIR9p6bJwDiVhJh5uOeJCvLa3rjqMGtE","ts":"2026-01-15T14:57:00.000Z","outcome":{"status":"SUCCESS","summary":"created","external_refs":[{"kind":"branch","id":"fix"}]},"meta":{},"_digest_alg":"sha256","_digest":"SyUlMosb1HkPIR9p6bJwDiVhJh5uOeJCvLa3rjqMGtE"}`,
	},
	"tga/v1/execution_log_entry": {
		`{"schema_id":"talos.tga.execution_log_entry","schema_version":"v1","trace_id":"01946896-1234-7567-89ab-000000000010","principal_id":"01946896-1234-7567-89ab-000000000019","seq":3,"prev_entry_digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","entry_digest":"SyUlMosb1HkPIR9p6bJwDiVhJh5uOeJCvLa3rjqMGtE","ts":"2026-01-15T14:55:00.000Z","from_state":"AUTHORIZED","to_state":"EXECUTING","artifact_type":"tool_call","artifact_data":{"args":{"api_key":"[REDACTED]"}},"artifact_id":"01946896-1234-7567-89ab-000000000015","artifact_digest":"SyUlMosb1HkPIR9p6bJwDiVhJh5uOeJCvLa3rjqMGtE","tool_call_id":"01946896-1234-7567-89ab-000000000015","idempotency_key":null}`,
	},
	"tga/v1/execution_state": {
		`{"schema_id":"talos.tga.execution_state","schema_version":"v1","trace_id":"01946896-1234-7567-89ab-000000000010","plan_id":"01946896-1234-7567-89ab-000000000011","current_state":"COMPLETED","last_sequence_number":4,"last_entry_digest":"0000000000000000000000000000000000000000000000000000000000000000","state_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
	},
	"tga/v1/execution_checkpoint": {
		`{"schema_id":"talos.tga.execution_checkpoint","schema_version":"v1","trace_id":"01946896-1234-7567-89ab-000000000010","checkpoint_sequence_number":2,"checkpoint_state":{"trace_id":"01946896-1234-7567-89ab-000000000010","plan_id":"01946896-1234-7567-89ab-000000000011","current_state":"AUTHORIZED","last_sequence_number":2,"last_entry_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},"checkpoint_digest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","ts":"2026-01-15T14:55:00.000Z"}`,
	},
	"tga/v1/governance.authorize.v1.request": {
		`{"principal_id":"01946896-1234-7567-89ab-000000000019","tool_server":"mcp.github","tool_name":"create_branch.v2","args":{"name":"fix"},"capability_token":"ey.ey.sig"}`,
		`{"principal_id":"01946896-1234-7567-89ab-000000000019","tool_server":"mcp-github","tool_name":"create-branch","args":{},"session_id":"01946896-1234-7567-89ab-000000000016"}`,
		`{"principal_id":"01946896-1234-7567-89ab-000000000019","tool_server":"mcp-github","tool_name":"create-branch","args":{},"capability_token":"ey.ey.sig","session_id":"01946896-1234-7567-89ab-000000000016"}`,
	},
	"tga/v1/governance.authorize.v1.response": {
		`{"error":{"code":"TGA_CONSTRAINT_MISMATCH","message":"args digest not allowed","retryable":false}}`,
	},
	"tga/v1/governance.log.v1.request": {
		`{"trace_id":"01946896-1234-7567-89ab-000000000010","principal_id":"01946896-1234-7567-89ab-000000000019","seq":1,"timestamp":"2026-01-15T14:45:00Z","artifact_type":"action_request","artifact_data":{"k":"v"},"idempotency_key":"01946896-1234-7567-89ab-000000000017","prev_entry_digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
	},
	"tga/v1/governance.log.v1.response": {
		`{"error":{"code":"TGA_HASH_CHAIN_BROKEN","message":"previous digest mismatch","retryable":false,"details":{"seq":2}}}`,
	},
	"tga/v1/governance.recover.v1.request": {
		`{"trace_id":"01946896-1234-7567-89ab-000000000010"}`,
	},
	"tga/v1/governance.recover.v1.response": {
		`{"chain_valid":false,"divergence_point":"2","latest_entry_digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","entry_count":3,"last_seq":3,"missing_seq_ranges":[{"start_seq":2,"end_seq":2}],"recommended_action":"REPLAY_FROM_DIVERGENCE","re_dispatch_required":true}`,
	},
	"config/v1/talos.config": {
		`{"config_version":"1.0","global":{}}`,
		`{"config_version":"1.0","contracts_version":"1.2.0","global":{"env":"prod","region":"eu-west-1","log_level":"WARNING"},"gateway":{"port":8443,"host":"127.0.0.1","database_url_ref":"env:DATABASE_URL","disable_auth":false},"audit":{"storage_backend":"memory","database_url_ref":"env:AUDIT_DB","retention_days":30},"mcp_connector":{"allowed_servers":["https://mcp.example.com/sse"],"signing_key_ref":"file:/run/secrets/mcp"},"extensions":{"x":{"y":[1,2]}}}`,
	},
}
