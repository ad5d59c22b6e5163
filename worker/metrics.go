package worker

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's collectors.
type Metrics struct {
	// attempts counts SMTP transactions. Labels: relay (relay name),
	// result (sent, deferred, failed), code_class (2xx, 4xx, 5xx, network).
	attempts *prometheus.CounterVec
	// relayDuration times one SMTP transaction. Label: relay.
	relayDuration *prometheus.HistogramVec
	// signDuration times one DKIM signature. Label: algorithm (rsa, ed25519).
	signDuration *prometheus.HistogramVec
	// unsigned counts messages sent unsigned from an allowed but
	// unregistered sender domain. Label: domain.
	unsigned *prometheus.CounterVec
	// dkimUnavailable counts attempts deferred because a registered sender
	// domain's DKIM keys could not be loaded. Label: domain.
	dkimUnavailable *prometheus.CounterVec
	// messages is the number of messages by status (refreshed by the
	// reconciler). Label: status.
	messages *prometheus.GaugeVec
}

// NewMetrics makes the collectors; Register adds them to a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_delivery_attempts_total",
			Help: "SMTP delivery attempts by relay, result and reply code class.",
		}, []string{"relay", "result", "code_class"}),
		relayDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailgate_relay_duration_seconds",
			Help:    "Duration of one SMTP transaction with the upstream relay.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"relay"}),
		signDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailgate_dkim_sign_duration_seconds",
			Help:    "Duration of one DKIM signature by key algorithm.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025},
		}, []string{"algorithm"}),
		unsigned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_unsigned_messages_total",
			Help: "Messages sent without DKIM from an allowed but unregistered sender domain.",
		}, []string{"domain"}),
		dkimUnavailable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_dkim_unavailable_total",
			Help: "Delivery attempts deferred because the registered sender domain's DKIM keys could not be loaded.",
		}, []string{"domain"}),
		messages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailgate_messages",
			Help: "Messages by status.",
		}, []string{"status"}),
	}
}

// Register adds the collectors to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.attempts, m.relayDuration, m.signDuration, m.unsigned, m.dkimUnavailable, m.messages} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return nil
}

// ObserveSign is mta.SignerConfig.Observe.
func (m *Metrics) ObserveSign(algorithm string, d time.Duration) {
	m.signDuration.WithLabelValues(algorithm).Observe(d.Seconds())
}
