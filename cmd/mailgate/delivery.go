package main

import (
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/verp"
	"github.com/mailgate/mailgate/worker"
)

// relayConfigs parses MAILGATE_RELAYS; errors never carry a password.
func (a *app) relayConfigs() ([]mta.RelayConfig, error) {
	out := make([]mta.RelayConfig, 0, len(a.cfg.Relays))
	for i, raw := range a.cfg.Relays {
		rc, err := mta.ParseRelayURL(raw)
		if err != nil {
			return nil, fmt.Errorf("MAILGATE_RELAYS item %d: %w", i+1, err)
		}
		if rc.HeloName == "" || rc.HeloName == "localhost" {
			rc.HeloName = a.cfg.HeloName
		}
		out = append(out, rc)
	}
	return out, nil
}

// relayHosts are the relays' host names, for the SPF hint of a domain.
func (a *app) relayHosts() []string {
	rcs, err := a.relayConfigs()
	if err != nil {
		return nil
	}
	hosts := make([]string, len(rcs))
	for i, rc := range rcs {
		hosts[i] = rc.Host
	}
	return hosts
}

// deliverer builds the send pipeline signing with keys, or nil when no
// relay is configured.
func (a *app) deliverer(metrics *worker.Metrics, keys *worker.StoreKeys) (*worker.Deliverer, error) {
	rcs, err := a.relayConfigs()
	if err != nil || len(rcs) == 0 {
		return nil, err
	}
	pools := make([]*mta.Pool, len(rcs))
	for i, rc := range rcs {
		if pools[i], err = mta.NewPool(rc, mta.DefaultTimeouts()); err != nil {
			return nil, fmt.Errorf("relay %s: %w", rc, err)
		}
	}
	policy, err := a.ratePolicy(rcs)
	if err != nil {
		return nil, err
	}
	returnPath := a.cfg.ReturnPathDomain
	if returnPath == "" {
		returnPath = "localhost"
		a.log.Warn("MAILGATE_RETURN_PATH_DOMAIN is empty: bounces will go to b+…@localhost")
	}
	a.log.Info("DKIM signing", "rsa_backend", mta.RSABackend())
	return worker.NewDeliverer(worker.DeliveryConfig{
		RetryBase: a.cfg.RetryBase, RetryMax: a.cfg.RetryMax, MaxAge: a.cfg.MaxQueueAge,
		Production: a.cfg.Production(), AllowedSenderDomains: a.cfg.AllowedSenderDomains,
	}, worker.DeliveryDeps{
		Store:      a.store,
		Relay:      mta.NewRelays(pools),
		Limits:     policy,
		ReturnPath: verp.New(a.keyring, returnPath),
		Keys:       keys,
		Signer:     mta.NewSigner(mta.SignerConfig{Observe: metrics.ObserveSign}),
		Metrics:    metrics,
		Log:        a.log,
	}), nil
}

// ratePolicy is every delivery limit from the configuration.
func (a *app) ratePolicy(rcs []mta.RelayConfig) (*ratelimit.Policy, error) {
	pc := ratelimit.PolicyConfig{Relay: map[string][]ratelimit.Limit{},
		DisableProviderDefaults: !a.cfg.RateProviderDefaults}
	for _, rc := range rcs {
		lims, err := optionalRate(rc.Rate)
		if err != nil {
			return nil, fmt.Errorf("relay %s rate: %w", rc.Name, err)
		}
		if len(lims) > 0 {
			pc.Relay[rc.Name] = lims
		}
	}
	var err error
	if pc.SenderDomain, err = optionalRate(a.cfg.RateSenderDomain); err != nil {
		return nil, fmt.Errorf("MAILGATE_RATE_SENDER_DOMAIN: %w", err)
	}
	if pc.Key, err = optionalRate(a.cfg.RateKey); err != nil {
		return nil, fmt.Errorf("MAILGATE_RATE_KEY: %w", err)
	}
	if pc.RecipientDomains, err = domainRates(a.cfg.RateRecipientDomains); err != nil {
		return nil, fmt.Errorf("MAILGATE_RATE_RECIPIENT_DOMAINS: %w", err)
	}
	p := ratelimit.NewPolicy(pc, ratelimit.New(ratelimit.Config{}, a.redis))
	return p, p.Register(a.reg)
}

// optionalRate parses one or more comma-separated limits ("10/s,1000/h");
// none is no limit. Every configured limit has burst 1: "N/s" means at
// most N sends (+1 of GCRA tolerance) in any one period. The default
// burst of N would let almost 2N through in one second (an idle bucket
// spent at once, then N more); the e2e tests count this at the sink.
func optionalRate(s string) ([]ratelimit.Limit, error) {
	lims, err := ratelimit.ParseRates(s)
	for i := range lims {
		lims[i].Burst = 1
	}
	return lims, err
}

// domainRates parses "gmail.com=20/s,1000/h;example.org=off".
func domainRates(s string) (map[string][]ratelimit.Limit, error) {
	out := map[string][]ratelimit.Limit{}
	for _, item := range strings.Split(s, ";") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		domain, rate, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("want domain=rate, got %q", item)
		}
		lims, err := optionalRate(rate)
		if err != nil {
			return nil, err
		}
		out[strings.ToLower(strings.TrimSpace(domain))] = lims
	}
	return out, nil
}
