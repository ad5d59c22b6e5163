package mta_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/mta"
)

func ExampleBuild() {
	n := 0
	b := mta.Builder{Boundary: func() string { n++; return fmt.Sprintf("b%d", n) }}
	raw, err := b.Build(&mta.Message{
		ID:      "01JDX3Q7V6Z9",
		From:    mta.Address{Name: "Shop", Email: "orders@shop.example"},
		To:      []mta.Address{{Email: "ann@example.org"}},
		Subject: "Grüße",
		Text:    "Thanks for your order.",
		HTML:    "<p>Thanks for your order.</p>",
		Date:    time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(strings.ReplaceAll(string(raw), "\r\n", "\n"))
	// Output:
	// Date: Thu, 26 Nov 2026 09:30:00 +0000
	// From: "Shop" <orders@shop.example>
	// To: <ann@example.org>
	// Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
	// Message-Id: <01JDX3Q7V6Z9@shop.example>
	// X-Mailgate-Id: 01JDX3Q7V6Z9
	// Mime-Version: 1.0
	// Content-Type: multipart/alternative; boundary=b1
	//
	// --b1
	// Content-Type: text/plain; charset=utf-8
	// Content-Transfer-Encoding: 7bit
	//
	// Thanks for your order.
	// --b1
	// Content-Type: text/html; charset=utf-8
	// Content-Transfer-Encoding: 7bit
	//
	// <p>Thanks for your order.</p>
	// --b1--
}

func ExampleSigner_Sign() {
	// In production the key comes from dkimkey.GenerateKey and is stored
	// sealed; here a fixed seed keeps the example self-contained.
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	record, _ := dkimkey.DNSRecordValue(key.Public())
	raw := []byte("From: orders@shop.example\r\nTo: ann@example.org\r\nSubject: hi\r\n\r\nHello.\r\n")

	signer := mta.NewSigner(mta.SignerConfig{})
	signed, err := signer.Sign(raw, []mta.DKIMKey{{Domain: "shop.example", Selector: "mg1", Signer: key}})
	if err != nil {
		log.Fatal(err)
	}

	// Verify it as a receiver would, with the record published at
	// mg1._domainkey.shop.example.
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{record}, nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range vs {
		fmt.Println(v.Domain, strings.Join(v.HeaderKeys, ":"), v.Err)
	}
	// Output:
	// shop.example From:From:To:Subject <nil>
}

func ExampleRelays() {
	// MAILGATE_RELAYS: the first relay is preferred.
	cfgs, err := mta.ParseRelayURLs("smtp://mailer:secret@smtp.example.com:587?max_conns=4,smtps://backup.example.com")
	if err != nil {
		log.Fatal(err)
	}
	var pools []*mta.Pool
	for _, cfg := range cfgs {
		fmt.Println(cfg) // the password is never printed
		p, err := mta.NewPool(cfg, mta.DefaultTimeouts())
		if err != nil {
			log.Fatal(err)
		}
		pools = append(pools, p)
	}
	relays := mta.NewRelays(pools)
	defer relays.Close()
	_ = func(ctx context.Context, signed []byte) {
		// One transaction per recipient, with its own VERP envelope.
		name, err := relays.Send(ctx, mta.Envelope{From: "b+TOKEN@bounces.shop.example", To: "ann@example.org"}, signed)
		fmt.Println(name, mta.CodeClass(err))
	}
	// Output:
	// smtp://mailer@smtp.example.com:587?max_conns=4&tls=starttls
	// smtp://backup.example.com:465?max_conns=10&tls=implicit
}
