package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// A PushConfig is a task's push-notification destination
// (schemas/a2a/v1/task_push_notification_config).
type PushConfig struct {
	ID             string          `json:"id,omitempty"`
	TaskID         string          `json:"taskId,omitempty"`
	URL            string          `json:"url"`
	Token          string          `json:"token,omitempty"`
	Authentication *PushAuthConfig `json:"authentication,omitempty"`
}

// PushAuthConfig is the receiver's authentication; Credentials are never
// answered back (they read "[REDACTED]").
type PushAuthConfig struct {
	Scheme      string `json:"scheme"`
	Credentials string `json:"credentials,omitempty"`
}

// PushNotifierConfig configures a [PushNotifier].
type PushNotifierConfig struct {
	// Signer attests every delivery with the server's key (HTTP
	// attestation v1, opcode "a2a.push"), so receivers can verify it.
	// Required.
	Signer *identity.AttestationSigner
	// AllowLoopback and AllowPrivate admit loopback and private/link-local
	// destinations. Both default to false; only tests and closed networks
	// should set them.
	AllowLoopback, AllowPrivate bool
	// AllowHTTP admits http:// destinations (default: https only).
	AllowHTTP bool
	// Attempts bounds delivery attempts per update (default 4); back-off
	// doubles from Backoff (default 200 ms).
	Attempts int
	Backoff  time.Duration
	// Timeout bounds one attempt (default 5 s).
	Timeout time.Duration
	// OnDelivery, if set, is told each delivery's outcome (for auditing).
	OnDelivery func(cfg PushConfig, taskID string, status int, err error)
	// MaxConfigsPerTask bounds the configs of a task (default 8).
	MaxConfigsPerTask int
	// Store keeps the push configurations. If nil, a
	// [MemPushConfigStore] (lost at restart); gateway/a2a/postgres's
	// TaskStore is one on PostgreSQL.
	Store PushConfigStore
}

// PushConfigStore keeps tasks' push configurations. Implementations are
// safe for concurrent use and pass gateway/a2a/a2atest.TestPushConfigStore.
type PushConfigStore interface {
	// PutPushConfig creates or replaces the config (TaskID, ID) of a task;
	// creating one more than max configs for the task is refused with
	// TALOS_INVALID_INPUT.
	PutPushConfig(ctx context.Context, c PushConfig, max int) error
	// ListPushConfigs returns a task's configs in creation order.
	ListPushConfigs(ctx context.Context, taskID string) ([]PushConfig, error)
	// DeletePushConfig removes one config, reporting whether it existed.
	DeletePushConfig(ctx context.Context, taskID, id string) (bool, error)
}

// MemPushConfigStore is the in-memory [PushConfigStore].
type MemPushConfigStore struct {
	mu     sync.Mutex
	byTask map[string][]PushConfig
}

// NewMemPushConfigStore returns an empty store.
func NewMemPushConfigStore() *MemPushConfigStore {
	return &MemPushConfigStore{byTask: map[string][]PushConfig{}}
}

func clonePush(c PushConfig) PushConfig {
	if c.Authentication != nil {
		a := *c.Authentication
		c.Authentication = &a
	}
	return c
}

// PutPushConfig implements [PushConfigStore].
func (m *MemPushConfigStore) PutPushConfig(_ context.Context, c PushConfig, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.byTask[c.TaskID]
	for i := range list {
		if list[i].ID == c.ID {
			list[i] = clonePush(c)
			return nil
		}
	}
	if len(list) >= max {
		return contracts.New(contracts.CodeInvalidInput, "a2a: too many push configs for the task")
	}
	m.byTask[c.TaskID] = append(list, clonePush(c))
	return nil
}

// ListPushConfigs implements [PushConfigStore].
func (m *MemPushConfigStore) ListPushConfigs(_ context.Context, taskID string) ([]PushConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PushConfig, 0, len(m.byTask[taskID]))
	for _, c := range m.byTask[taskID] {
		out = append(out, clonePush(c))
	}
	return out, nil
}

// DeletePushConfig implements [PushConfigStore].
func (m *MemPushConfigStore) DeletePushConfig(_ context.Context, taskID, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.byTask[taskID]
	for i := range list {
		if list[i].ID == id {
			m.byTask[taskID] = append(list[:i:i], list[i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

// PushDestinationOp is the attestation opcode of push deliveries.
const PushDestinationOp = "a2a.push"

// A PushNotifier stores push configs and delivers task updates without
// SSRF: the destination is checked when configured and again at dial time
// on the resolved address (defeating DNS rebinding).
type PushNotifier struct {
	cfg    PushNotifierConfig
	client *http.Client
	wg     sync.WaitGroup
}

// NewPushNotifier returns a PushNotifier.
func NewPushNotifier(cfg PushNotifierConfig) (*PushNotifier, error) {
	if cfg.Signer == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: PushNotifierConfig.Signer is required")
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxConfigsPerTask <= 0 {
		cfg.MaxConfigsPerTask = 8
	}
	if cfg.Store == nil {
		cfg.Store = NewMemPushConfigStore()
	}
	p := &PushNotifier{cfg: cfg}
	d := &net.Dialer{Timeout: cfg.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return contracts.New(contracts.CodePolicyDenied, "a2a: push destination address unparsable")
		}
		return p.checkAddr(ap.Addr())
	}}
	p.client = &http.Client{
		Timeout:       cfg.Timeout,
		Transport:     &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConns: 16, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// checkAddr refuses addresses the config does not allow.
func (p *PushNotifier) checkAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		if !p.cfg.AllowLoopback {
			return contracts.New(contracts.CodePolicyDenied, "a2a: push destination is loopback")
		}
	case a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast():
		if !p.cfg.AllowPrivate {
			return contracts.New(contracts.CodePolicyDenied, "a2a: push destination is not a public address")
		}
	}
	return nil
}

// ValidateDestination checks a push URL: scheme, no credentials, and, for
// literal IPs, the address policy (host names are checked when dialed).
func (p *PushNotifier) ValidateDestination(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return contracts.New(contracts.CodeInvalidInput, "a2a: push url must be an absolute URL without credentials")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && p.cfg.AllowHTTP) {
		return contracts.New(contracts.CodeInvalidInput, "a2a: push url scheme not allowed")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		return p.checkAddr(a)
	}
	if u.Hostname() == "localhost" && !p.cfg.AllowLoopback {
		return contracts.New(contracts.CodePolicyDenied, "a2a: push destination is loopback")
	}
	return nil
}

func (p *PushNotifier) set(ctx context.Context, c PushConfig) (PushConfig, error) {
	if err := p.ValidateDestination(c.URL); err != nil {
		return c, err
	}
	return c, p.cfg.Store.PutPushConfig(ctx, c, p.cfg.MaxConfigsPerTask)
}

func (p *PushNotifier) list(ctx context.Context, taskID string) ([]PushConfig, error) {
	return p.cfg.Store.ListPushConfigs(ctx, taskID)
}

// Notify delivers t's current state to every destination of the task, in
// the background, with bounded retries.
// A store that cannot list the task's configs is reported to OnDelivery
// (with an empty config) and nothing is delivered.
func (p *PushNotifier) Notify(ctx context.Context, t *Task) {
	cfgs, err := p.list(context.WithoutCancel(ctx), t.ID)
	if err != nil {
		if p.cfg.OnDelivery != nil {
			p.cfg.OnDelivery(PushConfig{TaskID: t.ID}, t.ID, 0, err)
		}
		return
	}
	if len(cfgs) == 0 {
		return
	}
	body, err := json.Marshal(map[string]any{"statusUpdate": map[string]any{"taskId": t.ID, "contextId": t.ContextID, "status": t.Status,
		"metadata": map[string]any{"version": t.Version, "final": t.Status.State.Terminal()}}})
	if err != nil {
		return
	}
	for _, c := range cfgs {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.deliver(c, t.ID, body)
		}()
	}
}

// Wait waits for deliveries in flight.
func (p *PushNotifier) Wait() { p.wg.Wait() }

func (p *PushNotifier) deliver(c PushConfig, taskID string, body []byte) {
	wait := p.cfg.Backoff
	var status int
	var err error
	for i := 0; i < p.cfg.Attempts; i++ {
		if i > 0 {
			time.Sleep(wait)
			wait *= 2
		}
		status, err = p.attempt(c, body)
		if err == nil && status < 300 {
			break
		}
		if err != nil && contracts.CodeOf(err) == contracts.CodePolicyDenied {
			break
		}
	}
	if p.cfg.OnDelivery != nil {
		p.cfg.OnDelivery(c, taskID, status, err)
	}
}

func (p *PushNotifier) attempt(c PushConfig, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("X-A2A-Notification-Token", c.Token)
	}
	if a := c.Authentication; a != nil && a.Credentials != "" {
		req.Header.Set("Authorization", a.Scheme+" "+a.Credentials)
	}
	if err := p.cfg.Signer.Sign(req, PushDestinationOp); err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ce *contracts.Error
		if asContracts(err, &ce) {
			return 0, ce
		}
		return 0, contracts.Wrap(contracts.CodeTransportError, "a2a: push delivery failed", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func redacted(c PushConfig) PushConfig {
	if c.Authentication != nil {
		a := *c.Authentication
		if a.Credentials != "" {
			a.Credentials = "[REDACTED]"
		}
		c.Authentication = &a
	}
	return c
}

// pushMethod serves the four push-config methods.
func (h *RPCHandler) pushMethod(ctx context.Context, name string, c *callCtx) (any, error) {
	if h.cfg.Push == nil {
		return nil, contracts.New(contracts.CodeNotFound, "a2a: push notifications are not enabled")
	}
	var p PushConfig
	if err := decodeParams(c.params, &p); err != nil || p.TaskID == "" {
		return nil, invalidParams()
	}
	if _, err := h.ownTask(ctx, c, p.TaskID); err != nil {
		return nil, err
	}
	switch name {
	case "CreateTaskPushNotificationConfig":
		if p.ID == "" {
			p.ID = contracts.NewUUIDv7()
		}
		cfg, err := h.cfg.Push.set(ctx, p)
		if err != nil {
			return nil, err
		}
		return redacted(cfg), nil
	case "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfigs":
		list, err := h.cfg.Push.list(ctx, p.TaskID)
		if err != nil {
			return nil, err
		}
		out := []PushConfig{}
		for _, x := range list {
			if name == "ListTaskPushNotificationConfigs" {
				out = append(out, redacted(x))
			} else if x.ID == p.ID {
				return redacted(x), nil
			}
		}
		if name == "GetTaskPushNotificationConfig" {
			return nil, contracts.New(contracts.CodeNotFound, "a2a: push config not found")
		}
		return map[string]any{"configs": out}, nil
	default:
		ok, err := h.cfg.Push.cfg.Store.DeletePushConfig(ctx, p.TaskID, p.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, contracts.New(contracts.CodeNotFound, "a2a: push config not found")
		}
		return map[string]any{"deleted": true, "id": p.ID}, nil
	}
}
