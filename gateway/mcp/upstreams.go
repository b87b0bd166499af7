package mcp

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/talosgo/talos/contracts"
)

// ErrUnknownUpstream matches (errors.Is) the error of RemoveUpstream for
// an upstream the gateway does not serve (NOT_FOUND).
var ErrUnknownUpstream = contracts.NewSentinel(contracts.CodeNotFound, "mcp: no such upstream")

// MaxUpstreams bounds the upstreams one gateway serves.
const MaxUpstreams = 256

// ValidUpstreamName reports whether name may name an upstream: 1 to 64
// bytes of ASCII letters, digits, '-' and '_' (tools are served as
// "<name>.<tool>").
func ValidUpstreamName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// refreshLock returns the lock that serializes upstream name's listings.
func (g *Gateway) refreshLock(name string) *sync.Mutex {
	g.mu.Lock()
	defer g.mu.Unlock()
	mu := g.refreshMu[name]
	if mu == nil {
		mu = &sync.Mutex{}
		g.refreshMu[name] = mu
	}
	return mu
}

func (g *Gateway) hasUpstream(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dialers[name] != nil
}

// Upstreams returns the names of the upstreams served now, sorted.
func (g *Gateway) Upstreams() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.dialers))
	for n := range g.dialers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AddUpstream starts serving upstream name at run time, replacing an
// upstream of that name: it connects, lists the tools and, with a derived
// registry, rebuilds the Kernel for the new registry, before it returns.
// With a fixed Config.Registry, the new upstream's tools are served only
// where the registry lists them (others stay UNKNOWN_TOOL). Resources and
// prompts are proxied for an added upstream only if the gateway declared
// them at start-up. An upstream that cannot be reached or listed is not
// added (a replaced one is removed): the error says why.
func (g *Gateway) AddUpstream(ctx context.Context, name string, d Dialer) error {
	if !ValidUpstreamName(name) || d == nil {
		return contracts.New(contracts.CodeInvalidInput, "mcp: invalid upstream name or dialer")
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return contracts.New(contracts.CodeUpstream5xx, "mcp: gateway closed")
	}
	if g.dialers[name] == nil && len(g.dialers) >= MaxUpstreams {
		g.mu.Unlock()
		return contracts.New(contracts.CodeInvalidInput, "mcp: too many upstreams")
	}
	g.mu.Unlock()
	if g.hasUpstream(name) {
		if err := g.RemoveUpstream(name); err != nil && !errors.Is(err, ErrUnknownUpstream) {
			return err
		}
	}
	mu := g.refreshLock(name)
	mu.Lock()
	g.mu.Lock()
	g.dialers[name] = d
	g.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, g.cfg.ConnectTimeout)
	defer cancel()
	fail := func(err error) error {
		g.mu.Lock()
		if g.dialers[name] != nil && g.upstreams[name] == nil {
			delete(g.dialers, name)
		}
		g.mu.Unlock()
		mu.Unlock()
		return err
	}
	cs, err := g.connect(cctx, name)
	if err != nil {
		return fail(contracts.Wrap(contracts.CodeUpstream5xx, "mcp: upstream "+name+" unreachable", err))
	}
	tools, err := listTools(cctx, name, cs)
	if err != nil {
		cs.Close()
		return fail(err)
	}
	r, p := offers(cs)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		cs.Close()
		return fail(contracts.New(contracts.CodeUpstream5xx, "mcp: gateway closed"))
	}
	g.upstreams[name] = cs
	g.tools[name] = tools
	g.offered[name] = offer{resources: r, prompts: p}
	g.mu.Unlock()
	mu.Unlock()
	if g.derived {
		return g.reinstall()
	}
	return nil
}

// RemoveUpstream stops serving upstream name at run time: its session is
// closed, its tools are no longer listed, and calls to them are refused
// by the Kernel (UNKNOWN_TOOL, audited). ErrUnknownUpstream if it is not
// served.
func (g *Gateway) RemoveUpstream(name string) error {
	mu := g.refreshLock(name)
	mu.Lock()
	g.mu.Lock()
	if g.dialers[name] == nil {
		g.mu.Unlock()
		mu.Unlock()
		return ErrUnknownUpstream
	}
	cs := g.upstreams[name]
	delete(g.dialers, name)
	delete(g.upstreams, name)
	delete(g.tools, name)
	delete(g.offered, name)
	delete(g.resources, name)
	g.mu.Unlock()
	mu.Unlock()
	if cs != nil {
		cs.Close()
	}
	if g.derived {
		return g.reinstall()
	}
	return nil
}
