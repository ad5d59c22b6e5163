package mta

import (
	"context"
	"strings"
	"testing"
)

// benchMessage is a message of about 10 KB on the wire: text and HTML
// bodies and a small attachment.
func benchMessage() *Message {
	m := baseMessage()
	m.Text = strings.Repeat("Thank you for your order. It ships tomorrow.\n", 70)
	m.HTML = "<html><body>" + strings.Repeat("<p>Thank you for your order. It ships tomorrow.</p>\n", 60) + "</body></html>"
	m.Attachments = []Attachment{{Filename: "receipt.txt", ContentType: "text/plain", Content: []byte(strings.Repeat("line item 42.00\n", 60))}}
	return m
}

func BenchmarkBuild(b *testing.B) {
	m := benchMessage()
	raw, _ := Build(m)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(m); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSign(b *testing.B, algs ...string) {
	raw, err := Build(benchMessage())
	if err != nil {
		b.Fatal(err)
	}
	keys := newKeySet(b, algs...).keys
	for i := range keys {
		keys[i].Signer = AccelerateKey(keys[i].Signer) // as the worker signs
	}
	s := NewSigner(SignerConfig{})
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(raw, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignRSA(b *testing.B)     { benchSign(b, "rsa") }
func BenchmarkSignEd25519(b *testing.B) { benchSign(b, "ed25519") }
func BenchmarkSignDual(b *testing.B)    { benchSign(b, "rsa", "ed25519") }

// BenchmarkPoolSend is pooled SMTP transactions to the in-process sink on
// loopback, 10 connections, signing excluded.
func BenchmarkPoolSend(b *testing.B) {
	s := newTestServer(b, serverOptions{})
	p := newTestPool(b, s.relay(TLSNone, nil), testTimeouts())
	raw, _ := Build(benchMessage())
	b.SetBytes(int64(len(raw)))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Send(context.Background(), env, raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPoolSendProvider is BenchmarkPoolSend through a relay of a
// provider (SendGrid: the longest header, and the check for a message's
// own X-SMTPAPI), each message carrying its id in the provider's header.
func BenchmarkPoolSendProvider(b *testing.B) {
	s := newTestServer(b, serverOptions{})
	cfg := s.relay(TLSNone, nil)
	cfg.Provider = ProviderSendGrid
	p := newTestPool(b, cfg, testTimeouts())
	raw, _ := Build(benchMessage())
	e := env
	e.MailgateID = providerTestID
	b.SetBytes(int64(len(raw)))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := p.Send(context.Background(), e, raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
