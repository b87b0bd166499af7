package main

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/talosgo/talos/contracts"

	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/llm"
)

// Routing policy config documents take effect (issue 15 item 1): a
// document of kind "policy" (contract ai_gateway/routing_policy, PUT
// /v1/config/policy/{name}) is parsed by llm.ParseRoutingPolicy and
// installed in the LLM proxy (llm.Proxy.SetPolicies) on this replica as
// soon as the PUT committed, and on the others by change propagation
// ("config.policy:<name>", replicas.go), within the propagation bound.
// At start every stored policy document is installed before the first
// request.
//
// Which policy a model group follows: the one its routing_policy_id names
// (PUT /v1/admin/llm/model-groups/{id}), else the one whose id (= document
// name) equals the model group id; without either the group tries its
// upstreams in order, once each, with TALOS_LLM_TIMEOUT. A policy named by
// no group routes nothing.
//
// The config service refuses such documents at PUT (enforcedKinds in
// configwire.go). One stored before (past llm's limits: max_attempts
// over 10, timeout_ms over one hour, ...) is not installed: the groups
// naming it route as without a policy, and a warning is logged. A failed
// read of the config store changes nothing (retried on the next change
// read).

// routingPolicies are the policies of the stored "policy" documents, by
// document name.
type routingPolicies struct {
	mu     sync.Mutex // guards byName, and orders installs
	byName map[string]llm.RoutingPolicy
}

// configPolicyKind is the config document kind of routing policies.
const configPolicyKind = "policy"

// loadConfigPolicy reads the latest policy document name and installs the
// policies in the LLM proxy.
func (p *propagation) loadConfigPolicy(ctx context.Context, name string) error {
	if err := p.readConfigPolicy(ctx, name); err != nil {
		return err
	}
	p.installPolicies()
	return nil
}

// readConfigPolicy updates the policy of document name from the store.
func (p *propagation) readConfigPolicy(ctx context.Context, name string) error {
	v, err := p.s.configs.Latest(ctx, configPolicyKind, name)
	rp := &p.policies
	if errors.Is(err, config.ErrNotFound) || contracts.CodeOf(err) == contracts.CodeNotFound {
		rp.mu.Lock()
		delete(rp.byName, name)
		rp.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	pol, perr := llm.ParseRoutingPolicy(v.Document)
	if perr == nil && pol.ID != name {
		perr = contracts.New(contracts.CodeInvalidInput, "policy id differs from the document name")
	}
	rp.mu.Lock()
	if perr != nil {
		delete(rp.byName, name)
	} else {
		rp.byName[name] = pol
	}
	rp.mu.Unlock()
	if perr != nil {
		p.s.log.Warn("routing policy document not enforced; model groups naming it route without a policy", "name", name, "version", v.Version, "err", perr)
	}
	return nil
}

// loadStoredConfigPolicies installs every stored policy document (start).
func (p *propagation) loadStoredConfigPolicies(ctx context.Context) error {
	afterKind, afterName := configPolicyKind, ""
	for {
		docs, err := p.s.configs.List(ctx, afterKind, afterName, config.MaxListPage)
		if err != nil {
			return err
		}
		for _, d := range docs {
			if d.Kind != configPolicyKind {
				p.installPolicies()
				return nil
			}
			if err := p.readConfigPolicy(ctx, d.Name); err != nil {
				return err
			}
		}
		if len(docs) < config.MaxListPage {
			break
		}
		afterKind, afterName = docs[len(docs)-1].Kind, docs[len(docs)-1].Name
	}
	p.installPolicies()
	return nil
}

// installPolicies installs the current policies in the LLM proxy, if there
// is one yet (installPoliciesIn runs when the upstream admin creates it).
func (p *propagation) installPolicies() {
	c := p.s.core
	var proxy *llm.Proxy
	if ua := c.upstreams; ua != nil {
		ua.mu.Lock() // c.llm is set by the upstream admin's applies
		proxy = c.llm
		ua.mu.Unlock()
	} else {
		proxy = c.llm
	}
	if proxy != nil {
		p.installPoliciesIn(proxy)
	}
}

// installPoliciesIn sets the current policies on proxy.
func (p *propagation) installPoliciesIn(proxy *llm.Proxy) {
	rp := &p.policies
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if err := proxy.SetPolicies(maps.Clone(rp.byName)); err != nil {
		p.s.log.Warn("routing policies not installed", "err", err)
	}
}

func newPolicyMap() map[string]llm.RoutingPolicy { return map[string]llm.RoutingPolicy{} }

// checkGroupPolicy checks a model group's routing_policy_id (a config
// document name, or empty) and weights (none, or one of 0 to
// llm.MaxRouteWeight per upstream).
func checkGroupPolicy(policyID string, weights []int, upstreams int) error {
	if policyID != "" && !validPolicyName(policyID) {
		return contracts.New(contracts.CodeInvalidInput, "routing_policy_id must be a policy document name (lowercase letters, digits and ._-)")
	}
	if weights != nil && len(weights) != upstreams {
		return contracts.New(contracts.CodeInvalidInput, "weights must have one entry per upstream")
	}
	for _, w := range weights {
		if w < 0 || w > llm.MaxRouteWeight {
			return contracts.New(contracts.CodeInvalidInput, "weights must be 0 to 1000000")
		}
	}
	return nil
}

// validPolicyName is the config service's rule for document names.
func validPolicyName(s string) bool {
	if s == "" || len(s) > config.MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
