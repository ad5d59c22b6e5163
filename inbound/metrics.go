package inbound

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/store"
)

// Metrics are the poller's collectors. Labels are bounded: mailbox names
// come from the configuration, domains are registered sender domains,
// kinds and reasons are bounce's fixed vocabularies.
type Metrics struct {
	// messages counts processed mailbox messages. Labels: mailbox (Source
	// name), kind (bounce, delayed, delivered, complaint, auto_reply,
	// reply, unknown).
	messages *prometheus.CounterVec
	// unmatched counts messages tied to no message of ours. Label: mailbox.
	unmatched *prometheus.CounterVec
	// bounces counts bounces applied to a recipient (authenticated by a
	// VERP token: a report matched by headers alone is not). Labels:
	// domain (the sender domain of the bounced message), type (hard,
	// soft), reason (bounce's reason vocabulary: userunknown, mailboxfull,
	// …).
	bounces *prometheus.CounterVec
	// complaints counts complaints applied to a recipient (authenticated,
	// as bounces). Label: domain (sender domain).
	complaints *prometheus.CounterVec
	// replies counts replies tied to a message. Label: kind (reply,
	// auto_reply).
	replies *prometheus.CounterVec
}

// NewMetrics makes the collectors; Register adds them to a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_inbound_messages_total",
			Help: "Mailbox messages processed by the poller, by mailbox and kind.",
		}, []string{"mailbox", "kind"}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_inbound_unmatched_total",
			Help: "Mailbox messages that could not be tied to a message, by mailbox.",
		}, []string{"mailbox"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_bounces_total",
			Help: "Bounces applied to recipients, by sender domain, type and reason.",
		}, []string{"domain", "type", "reason"}),
		complaints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_complaints_total",
			Help: "Complaints applied to recipients, by sender domain.",
		}, []string{"domain"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_replies_total",
			Help: "Replies and auto-replies tied to a message, by kind.",
		}, []string{"kind"}),
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.messages, m.unmatched, m.bounces, m.complaints, m.replies} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register inbound metrics: %w", err)
		}
	}
	return nil
}

// observe counts one processed (not duplicate) message and the effects
// that were applied.
func (m *Metrics) observe(mailbox string, pm processed, res store.InboundResult) {
	m.messages.WithLabelValues(mailbox, pm.report.Kind).Inc()
	if pm.target == nil {
		m.unmatched.WithLabelValues(mailbox).Inc()
		return
	}
	for i, ef := range pm.effects {
		if i >= len(res.Effects) || !res.Effects[i].Applied {
			continue
		}
		// Bounces and complaints count when they were applied to the
		// recipient, which only an authenticated report is; replies count
		// when they were tied to the message.
		switch pm.report.Kind {
		case bounce.KindBounce:
			if pm.authenticated {
				m.bounces.WithLabelValues(pm.target.FromDomain, bounceType(pm.results[i].Hard), reasonLabel(pm.results[i])).Inc()
			}
		case bounce.KindComplaint:
			if pm.authenticated {
				m.complaints.WithLabelValues(pm.target.FromDomain).Inc()
			}
		case bounce.KindReply, bounce.KindAutoReply:
			if ef.Event != "" {
				m.replies.WithLabelValues(pm.report.Kind).Inc()
			}
		}
	}
}
