package feedback_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/feedback/feedbacktest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

var now = time.Date(2026, 12, 7, 12, 0, 5, 0, time.UTC)

func clock() time.Time { return now }

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ignoreAt = cmpopts.IgnoreFields(feedback.Event{}, "At")

func TestSNS(t *testing.T) {
	signer, err := feedbacktest.NewSNS(now)
	if err != nil {
		t.Fatal(err)
	}
	certs := &feedback.CertCache{}
	v := &feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: signer.Fetch, Now: clock, Certs: certs}
	bounce := string(readFile(t, "ses_bounce.json"))
	ctx := context.Background()
	for _, version := range []string{"1", "2"} {
		t.Run("bounce v"+version, func(t *testing.T) {
			n, err := v.Verify(ctx, signer.Notification("sns-1", bounce, now, version))
			if err != nil {
				t.Fatal(err)
			}
			want := []feedback.Event{{ID: "sns-1/gone@example.net", Kind: feedback.KindBounce, Recipient: "gone@example.net",
				Severity: feedback.SeverityPermanent, Status: "5.1.1", MailgateID: "MSGID", MessageID: "<MSGID@example.com>",
				Diagnostic: "smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown"}}
			if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
				t.Error(d)
			}
		})
	}
	if got := signer.Fetches.Load(); got != 1 {
		t.Errorf("certificate fetched %d times, want 1 (cached)", got)
	}
	t.Run("complaint and delivery", func(t *testing.T) {
		n, err := v.Verify(ctx, signer.Notification("sns-2", string(readFile(t, "ses_complaint.json")), now, "2"))
		if err != nil {
			t.Fatal(err)
		}
		want := []feedback.Event{{ID: "sns-2/angry@example.net", Kind: feedback.KindComplaint,
			Recipient: "angry@example.net", FeedbackType: "abuse", MessageID: "<MSGID@example.com>"}}
		if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
			t.Error(d)
		}
		n, err = v.Verify(ctx, signer.Notification("sns-3", string(readFile(t, "ses_delivery.json")), now, "1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Events) != 1 || n.Events[0].Kind != feedback.KindDelivery || n.Events[0].Recipient != "ok@example.net" {
			t.Errorf("delivery events %+v", n.Events)
		}
	})
	t.Run("subscription confirmation", func(t *testing.T) {
		n, err := v.Verify(ctx, signer.Confirmation("sns-4", "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x", now))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(n.SubscribeURL, "ConfirmSubscription") || len(n.Events) != 0 {
			t.Errorf("confirmation %+v", n)
		}
	})
	refused := []struct {
		name string
		body []byte
		v    *feedback.SNS
		want error
	}{
		{"forged message", []byte(strings.Replace(string(signer.Notification("sns-5", bounce, now, "2")),
			"gone@example.net", "ok@example.net", 1)), v, feedback.ErrForged},
		{"replayed old", signer.Notification("sns-6", bounce, now.Add(-2*time.Hour), "2"), v, feedback.ErrStale},
		{"other topic", signer.Notification("sns-7", bounce, now, "2"),
			&feedback.SNS{TopicARN: "arn:aws:sns:eu-west-1:1:other", Fetch: signer.Fetch, Now: clock}, feedback.ErrTopic},
		{"unsigned", []byte(`{"Type":"Notification","TopicArn":"` + feedbacktest.TopicARN + `","Message":"{}"}`), v,
			feedback.ErrUnauthenticated},
		{"other key", signer.Notification("sns-8", bounce, now, "2"),
			&feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: otherSigner(t).Fetch, Now: clock}, feedback.ErrForged},
		{"not sns host", []byte(strings.Replace(string(signer.Notification("sns-9", bounce, now, "2")),
			"sns.eu-west-1.amazonaws.com", "sns.eu-west-1.amazonaws.com.evil.example", 1)), v, feedback.ErrCertificate},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(ctx, tc.body)
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func otherSigner(t *testing.T) *feedbacktest.SNS {
	s, err := feedbacktest.NewSNS(now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckCertURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem":     true,
		"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem": true,
		"http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem":      false,
		"https://sns.us-east-1.amazonaws.com.evil.example/x.pem":                    false,
		"https://evil.example/sns.us-east-1.amazonaws.com/x.pem":                    false,
		"https://user@sns.us-east-1.amazonaws.com/x.pem":                            false,
		"https://sns.us-east-1.amazonaws.com:8443/x.pem":                            false,
		"https://127.0.0.1/x.pem":                                                   false,
	} {
		if err := feedback.CheckCertURL(u); (err == nil) != ok {
			t.Errorf("CheckCertURL(%s) = %v, want ok %v", u, err, ok)
		}
	}
}

func TestSendGrid(t *testing.T) {
	s, err := feedbacktest.NewSendGrid()
	if err != nil {
		t.Fatal(err)
	}
	v := &feedback.SendGrid{PublicKey: s.PublicKey, Now: clock}
	body := readFile(t, "sendgrid_events.json")
	sig, ts := s.Sign(body, now)
	n, err := v.Verify(sig, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	want := []feedback.Event{
		{ID: "sg-bounce-event-0001", Kind: feedback.KindBounce, Recipient: "gone@example.net", Severity: feedback.SeverityPermanent, Status: "5.1.1",
			Diagnostic: "550 5.1.1 The email account that you tried to reach does not exist.", MailgateID: "MSGID",
			MessageID: "<MSGID@example.com>"},
		{ID: "sg-blocked-event-0002", Kind: feedback.KindBounce, Recipient: "busy@example.net", Severity: feedback.SeverityTemporary, Status: "4.7.0",
			Diagnostic: "421 4.7.0 Try again later, closing connection.", MailgateID: "MSGID", MessageID: "<MSGID@example.com>"},
		{ID: "sg-spam-event-0003", Kind: feedback.KindComplaint, Recipient: "angry@example.net", FeedbackType: "abuse",
			MessageID: "<MSGID@example.com>"},
		{ID: "sg-delivered-event-0004", Kind: feedback.KindDelivery, Recipient: "ok@example.net", MessageID: "<MSGID@example.com>"},
	}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	other, _ := feedbacktest.NewSendGrid()
	oldSig, oldTS := s.Sign(body, now.Add(-2*time.Hour))
	forgedBody := []byte(strings.Replace(string(body), "gone@example.net", "ok@example.net", 1))
	for name, tc := range map[string]struct {
		sig, ts string
		body    []byte
		want    error
	}{
		"forged body":   {sig, ts, forgedBody, feedback.ErrForged},
		"other key":     {func() string { x, _ := other.Sign(body, now); return x }(), ts, body, feedback.ErrForged},
		"replayed old":  {oldSig, oldTS, body, feedback.ErrStale},
		"new timestamp": {sig, oldTS, body, feedback.ErrStale},
		"unsigned":      {"", ts, body, feedback.ErrUnauthenticated},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(tc.sig, tc.ts, tc.body); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMailgun(t *testing.T) {
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	v := &feedback.Mailgun{SigningKey: key, Tokens: redisTokens(t), Scope: "p1", Now: clock}
	ctx := context.Background()
	failed := readFile(t, "mailgun_failed.json")
	n, err := v.Verify(ctx, feedbacktest.Mailgun(failed, key, "token-1-abcdef0123456789abcdef0123456789", now))
	if err != nil {
		t.Fatal(err)
	}
	want := []feedback.Event{{ID: "mg-failed-event-0001", Kind: feedback.KindBounce, Recipient: "gone@example.net",
		Severity: feedback.SeverityPermanent, Diagnostic: "550 5.1.1 The email account that you tried to reach does not exist.",
		MailgateID: "MSGID", MessageID: "MSGID@example.com"}}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	n, err = v.Verify(ctx, feedbacktest.Mailgun(readFile(t, "mailgun_complained.json"), key, "token-2", now))
	if err != nil {
		t.Fatal(err)
	}
	want = []feedback.Event{{ID: "mg-complained-event-0002", Kind: feedback.KindComplaint, Recipient: "angry@example.net",
		FeedbackType: "abuse", MessageID: "MSGID@example.com"}}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	for name, tc := range map[string]struct {
		body []byte
		want error
	}{
		"token reused": {feedbacktest.Mailgun(failed, key, "token-1-abcdef0123456789abcdef0123456789", now), feedback.ErrReplayed},
		"replayed old": {feedbacktest.Mailgun(failed, key, "token-3", now.Add(-2*time.Hour)), feedback.ErrStale},
		"other key":    {feedbacktest.Mailgun(failed, "key-other", "token-4", now), feedback.ErrForged},
		"forged body": {[]byte(strings.Replace(string(feedbacktest.Mailgun(failed, key, "token-5", now)),
			`"token-5"`, `"token-6"`, 1)), feedback.ErrForged},
		"unsigned": {failed[:0:0], feedback.ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(ctx, tc.body); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPostmark(t *testing.T) {
	v := &feedback.Postmark{Username: "mailgate", Password: "s3cret-pass"}
	n, err := v.Verify("mailgate", "s3cret-pass", true, readFile(t, "postmark_bounce.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []feedback.Event{{ID: "Bounce/4323372036854775807", Kind: feedback.KindBounce, Recipient: "gone@example.net",
		Severity: feedback.SeverityPermanent, Diagnostic: "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
		MailgateID: "MSGID"}}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	n, err = v.Verify("mailgate", "s3cret-pass", true, readFile(t, "postmark_complaint.json"))
	if err != nil {
		t.Fatal(err)
	}
	want = []feedback.Event{{ID: "SpamComplaint/42", Kind: feedback.KindComplaint, Recipient: "angry@example.net",
		FeedbackType: "abuse", MailgateID: "MSGID"}}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	n, err = v.Verify("mailgate", "s3cret-pass", true, readFile(t, "postmark_delivery.json"))
	if err != nil || len(n.Events) != 1 || n.Events[0].Kind != feedback.KindDelivery || n.Events[0].Recipient != "ok@example.net" {
		t.Errorf("delivery %+v, %v", n, err)
	}
	if _, err := v.Verify("mailgate", "wrong", true, readFile(t, "postmark_bounce.json")); !errors.Is(err, feedback.ErrForged) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := v.Verify("", "", false, readFile(t, "postmark_bounce.json")); !errors.Is(err, feedback.ErrUnauthenticated) {
		t.Errorf("no credentials: %v", err)
	}
}

func TestReason(t *testing.T) {
	if got := feedback.Reason(errors.Join(errors.New("x"), feedback.ErrReplayed)); got != "replayed" {
		t.Errorf("Reason = %q", got)
	}
}

// redisTokens is a RedisTokens on the test Redis under a prefix of its
// own, with a client of its own: two calls share the used tokens as two
// processes do.
func redisTokens(t *testing.T) *feedback.RedisTokens {
	t.Helper()
	return feedback.NewRedisTokens(redisClient(t, testsvc.RedisURL(t)), tokenPrefix(t))
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// tokenPrefix is a key prefix unique to the test (and to its runs).
func tokenPrefix(t *testing.T) string {
	return "mailgate-test:feedback:" + t.Name() + ":" + time.Now().Format(time.RFC3339Nano) + ":"
}

// TestRedisTokens: a token is accepted once across clients (processes),
// per scope, and Redis not answering is ErrTokensUnavailable, never a
// token taken unchecked.
func TestRedisTokens(t *testing.T) {
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	ctx := context.Background()
	url, prefix := testsvc.RedisURL(t), tokenPrefix(t)
	a := &feedback.Mailgun{SigningKey: key, Tokens: feedback.NewRedisTokens(redisClient(t, url), prefix), Scope: "p1", Now: clock}
	b := &feedback.Mailgun{SigningKey: key, Tokens: feedback.NewRedisTokens(redisClient(t, url), prefix), Scope: "p1", Now: clock}
	other := &feedback.Mailgun{SigningKey: key, Tokens: b.Tokens, Scope: "p2", Now: clock}
	body := feedbacktest.Mailgun(readFile(t, "mailgun_failed.json"), key, "token-shared", now)
	if _, err := a.Verify(ctx, body); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := b.Verify(ctx, body); !errors.Is(err, feedback.ErrReplayed) {
		t.Errorf("replay at another process: %v, want ErrReplayed", err)
	}
	if _, err := other.Verify(ctx, body); err != nil {
		t.Errorf("same token for another project: %v", err)
	}
	rdb := redisClient(t, url)
	ttl, err := rdb.PTTL(ctx, prefix+"mailgun:p1:token-shared").Result()
	if err != nil || ttl <= feedback.DefaultMaxAge || ttl > 2*feedback.DefaultMaxAge {
		t.Errorf("token kept for %v (%v), want up to twice the freshness window", ttl, err)
	}

	down := &feedback.Mailgun{SigningKey: key, Tokens: feedback.NewRedisTokens(redisClient(t, "redis://"+closedAddr(t)+"/0"), prefix),
		Scope: "p1", Now: clock}
	_, err = down.Verify(ctx, feedbacktest.Mailgun(readFile(t, "mailgun_failed.json"), key, "token-new", now))
	if !errors.Is(err, feedback.ErrTokensUnavailable) || feedback.Reason(err) != "other" {
		t.Errorf("Redis down: %v (reason %s), want ErrTokensUnavailable", err, feedback.Reason(err))
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("error shows the signing key: %v", err)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestBounceVerdicts: each provider's bounces carry its own permanent or
// temporary verdict, the status and diagnostic it reports and the cause it
// names (SES's bounceSubType, Postmark's type, named by TypeCode when the
// record has no Type), for the caller to classify; a Postmark record of a
// type that reports no failed delivery (an auto-responder) is no event.
func TestBounceVerdicts(t *testing.T) {
	ses, err := feedbacktest.NewSNS(now)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := feedbacktest.NewSendGrid()
	if err != nil {
		t.Fatal(err)
	}
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	ctx := context.Background()
	verify := map[string]func(file string) (feedback.Notification, error){
		"ses": func(file string) (feedback.Notification, error) {
			v := &feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: ses.Fetch, Now: clock}
			return v.Verify(ctx, ses.Notification("sns-9", string(readFile(t, file)), now, "2"))
		},
		"sendgrid": func(file string) (feedback.Notification, error) {
			sig, ts := sg.Sign(readFile(t, file), now)
			return (&feedback.SendGrid{PublicKey: sg.PublicKey, Now: clock}).Verify(sig, ts, readFile(t, file))
		},
		"mailgun": func(file string) (feedback.Notification, error) {
			v := &feedback.Mailgun{SigningKey: key, Tokens: redisTokens(t), Now: clock}
			return v.Verify(ctx, feedbacktest.Mailgun(readFile(t, file), key, "token-"+file, now))
		},
		"postmark": func(file string) (feedback.Notification, error) {
			return (&feedback.Postmark{Username: "u", Password: "p"}).Verify("u", "p", true, readFile(t, file))
		},
	}
	type got struct{ Recipient, Severity, Status, Diagnostic, Cause string }
	for _, tc := range []struct {
		provider, file string
		want           []got
	}{
		{"ses", "ses_bounce_mailboxfull.json", []got{{"full@example.net", "temporary", "5.2.2",
			"smtp; 552 5.2.2 <full@example.net>: Mailbox full", "mailboxfull"}}},
		{"ses", "ses_bounce_suppressed.json", []got{{"listed@example.net", "permanent", "", "", "userunknown"}}},
		{"sendgrid", "sendgrid_bounces.json", []got{
			{"gone@example.net", "permanent", "5.1.1", "550 5.1.1 The email account that you tried to reach does not exist.", ""},
			{"full@example.net", "temporary", "4.2.2", "452 4.2.2 The email account that you tried to reach is over quota.", ""}}},
		{"mailgun", "mailgun_failed_temporary.json", []got{{"full@example.net", "temporary", "4.2.2",
			"452 The email account that you tried to reach is over quota.", ""}}},
		{"postmark", "postmark_softbounce.json", []got{{"full@example.net", "temporary", "", "smtp;552 5.2.2 Mailbox full", ""}}},
		{"postmark", "postmark_typecode.json", []got{{"typo@example.net", "permanent", "", "", "userunknown"}}},
		{"postmark", "postmark_hardbounce_nodetails.json", []got{{"gone@example.net", "permanent", "", "", ""}}},
		{"postmark", "postmark_autoresponder.json", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			n, err := verify[tc.provider](tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var out []got
			for _, e := range n.Events {
				if e.Kind != feedback.KindBounce {
					t.Errorf("kind %s", e.Kind)
				}
				out = append(out, got{e.Recipient, e.Severity, e.Status, e.Diagnostic, e.Cause})
			}
			if d := cmp.Diff(tc.want, out); d != "" {
				t.Error(d)
			}
		})
	}
}
