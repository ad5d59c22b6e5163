package feedback_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
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
	v := &feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: signer.Fetch, Now: clock, Certs: certs, Roots: signer.Roots()}
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
	if got := signer.Fetches.Load(); got != 2 {
		t.Errorf("certificates fetched %d times, want 2 (the signing one and its issuer, then cached)", got)
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
	sibling, err := signer.Sibling(now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
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
			&feedback.SNS{TopicARN: "arn:aws:sns:eu-west-1:1:other", Fetch: signer.Fetch, Now: clock, Roots: signer.Roots()},
			feedback.ErrTopic},
		{"unsigned", []byte(`{"Type":"Notification","TopicArn":"` + feedbacktest.TopicARN + `","Message":"{}"}`), v,
			feedback.ErrUnauthenticated},
		{"other key", signer.Notification("sns-8", bounce, now, "2"),
			&feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: sibling.Fetch, Now: clock, Roots: signer.Roots()}, feedback.ErrForged},
		{"untrusted certificate", otherSigner(t).Notification("sns-8", bounce, now, "2"),
			&feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: otherSigner(t).Fetch, Now: clock, Roots: signer.Roots()},
			feedback.ErrCertificate},
		{"system roots", signer.Notification("sns-8", bounce, now, "2"),
			&feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: signer.Fetch, Now: clock}, feedback.ErrCertificate},
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

// TestCheckCertURL: a signing certificate URL is https on an SNS host,
// sns.REGION.amazonaws.com (.com.cn for China's regions) with REGION an
// AWS region name; other amazonaws.com hosts after "sns." (S3 buckets,
// API Gateway) are refused.
func TestCheckCertURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem":     true,
		"https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-abc.pem":  true,
		"https://sns.ap-southeast-2.amazonaws.com/SimpleNotificationService-a.pem":  true,
		"https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-a.pem":   true,
		"https://sns.il-central-1.amazonaws.com/SimpleNotificationService-a.pem":    true,
		"https://sns.mx-central-1.amazonaws.com/SimpleNotificationService-a.pem":    true,
		"https://sns.ap-northeast-3.amazonaws.com/SimpleNotificationService-a.pem":  true,
		"https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem": true,
		"https://sns.cn-northwest-1.amazonaws.com.cn/SimpleNotificationService.pem": true,
		"https://sns.cn-north-1.amazonaws.com/SimpleNotificationService-abc.pem":    false,
		"https://sns.us-east-1.amazonaws.com.cn/SimpleNotificationService-abc.pem":  false,
		"https://sns.s3.amazonaws.com/SimpleNotificationService-abc.pem":            false,
		"https://sns.s3-accelerate.amazonaws.com/SimpleNotificationService-a.pem":   false,
		"https://sns.s3-us-west-2.amazonaws.com/SimpleNotificationService-abc.pem":  false,
		"https://sns.s3.us-west-2.amazonaws.com/SimpleNotificationService-abc.pem":  false,
		"https://sns.execute-api.amazonaws.com/SimpleNotificationService-abc.pem":   false,
		"https://sns.us-east-1a.amazonaws.com/SimpleNotificationService-abc.pem":    false,
		"https://sns.amazonaws.com/SimpleNotificationService-abc.pem":               false,
		"http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem":      false,
		"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1": false,
		"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt":     false,
		"https://sns.us-east-1.amazonaws.com.evil.example/x.pem":                    false,
		"https://evil.example/sns.us-east-1.amazonaws.com/x.pem":                    false,
		"https://user@sns.us-east-1.amazonaws.com/x.pem":                            false,
		"https://sns.us-east-1.amazonaws.com:8443/x.pem":                            false,
		"https://127.0.0.1/x.pem": false,
	} {
		if err := feedback.CheckCertURL(u); (err == nil) != ok {
			t.Errorf("CheckCertURL(%s) = %v, want ok %v", u, err, ok)
		}
	}
	for u, ok := range map[string]bool{
		"http://crt.r2m01.amazontrust.com/r2m01.cer":     true,
		"https://crt.r2m02.amazontrust.com/r2m02.cer":    true,
		"http://cacerts.digicert.com/CA.crt":             true,
		"ftp://crt.r2m01.amazontrust.com/r2m01.cer":      false,
		"http://crt.r2m01.amazontrust.com:81/r2m01.cer":  false,
		"http://u@crt.r2m01.amazontrust.com/r2m01.cer":   false,
		"http://crt.r2m01.amazontrust.com/r2m01.cer?x=1": false,
		"http://127.0.0.1/r2m01.cer":                     false,
		"http://[::1]/r2m01.cer":                         false,
		"http://localhost/r2m01.cer":                     false,
	} {
		if err := feedback.CheckIssuerURL(u); (err == nil) != ok {
			t.Errorf("CheckIssuerURL(%s) = %v, want ok %v", u, err, ok)
		}
	}
}

// TestSNSCertCache: a cached certificate is used only while it is valid
// (an expired one is dropped and fetched again, and refused), and the
// cache holds a bounded number of certificates however many URLs
// messages name.
func TestSNSCertCache(t *testing.T) {
	ctx := context.Background()
	root, err := feedbacktest.NewSNS(now)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := root.Sibling(now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	at := now
	certs := &feedback.CertCache{}
	v := &feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: signer.Fetch, Now: func() time.Time { return at },
		Certs: certs, Roots: signer.Roots()}
	bounce := string(readFile(t, "ses_bounce.json"))
	if _, err := v.Verify(ctx, signer.Notification("c-1", bounce, at, "2")); err != nil {
		t.Fatal(err)
	}
	fetched := signer.Fetches.Load()
	at = now.Add(2 * time.Hour) // the certificate expired an hour ago
	_, err = v.Verify(ctx, signer.Notification("c-2", bounce, at, "2"))
	if !errors.Is(err, feedback.ErrCertificate) {
		t.Errorf("with an expired cached certificate: %v, want %v", err, feedback.ErrCertificate)
	}
	if signer.Fetches.Load() == fetched {
		t.Errorf("the expired certificate was not dropped from the cache")
	}

	at = now
	// The signature does not cover SigningCertURL: each message names
	// another certificate URL, all serving the signer's certificate.
	v.Fetch = func(ctx context.Context, u string) ([]byte, error) {
		if strings.HasPrefix(u, "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-n") {
			u = feedbacktest.CertURL
		}
		return signer.Fetch(ctx, u)
	}
	for i := range 40 {
		b := strings.Replace(string(signer.Notification("c-n", bounce, at, "2")), feedbacktest.CertURL,
			"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-n"+strconv.Itoa(i)+".pem", 1)
		if _, err := v.Verify(ctx, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if n := certs.Len(); n == 0 || n > 16 {
		t.Errorf("%d certificates cached after 40 URLs, want 1 to 16", n)
	}

	// The issuer is fetched once, and spellings of one certificate URL
	// (a letter percent-encoded) are one certificate: neither fetches
	// again.
	fresh := &feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: signer.Fetch, Now: func() time.Time { return at },
		Certs: &feedback.CertCache{}, Roots: signer.Roots()}
	before := signer.Fetches.Load()
	if _, err := fresh.Verify(ctx, signer.Notification("c-a", bounce, at, "2")); err != nil {
		t.Fatal(err)
	}
	if n := signer.Fetches.Load() - before; n != 2 {
		t.Errorf("first verification fetched %d certificates, want 2 (signing and issuer)", n)
	}
	u, err := url.Parse(feedbacktest.CertURL)
	if err != nil {
		t.Fatal(err)
	}
	last := strings.LastIndexByte(u.Path, '/') + 1
	spelt := "https://" + u.Host + u.Path[:last] + "%" + strconv.FormatInt(int64(u.Path[last]), 16) + u.Path[last+1:]
	b := strings.Replace(string(signer.Notification("c-b", bounce, at, "2")), feedbacktest.CertURL, spelt, 1)
	before = signer.Fetches.Load()
	if _, err := fresh.Verify(ctx, []byte(b)); err != nil {
		t.Fatalf("%s: %v", spelt, err)
	}
	if n := signer.Fetches.Load() - before; n != 0 {
		t.Errorf("%s fetched %d certificates, want 0 (the same certificate, cached)", spelt, n)
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
	want := []feedback.Event{{ID: "mg-failed-event-0001@1796644801.123", Kind: feedback.KindBounce, Recipient: "gone@example.net",
		Severity: feedback.SeverityPermanent, Diagnostic: "550 5.1.1 The email account that you tried to reach does not exist.",
		MailgateID: "MSGID", MessageID: "MSGID@example.com"}}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	n, err = v.Verify(ctx, feedbacktest.Mailgun(readFile(t, "mailgun_complained.json"), key, "token-2", now))
	if err != nil {
		t.Fatal(err)
	}
	want = []feedback.Event{{ID: "mg-complained-event-0002@1796644802.5", Kind: feedback.KindComplaint, Recipient: "angry@example.net",
		FeedbackType: "abuse", MessageID: "MSGID@example.com"}}
	if d := cmp.Diff(want, n.Events, ignoreAt); d != "" {
		t.Error(d)
	}
	// Mailgun giving up after temporary failures (reason "old") gives no
	// verdict: the rules read the last answer.
	old := strings.Replace(string(failed), `"reason": "bounce"`, `"reason": "old"`, 1)
	n, err = v.Verify(ctx, feedbacktest.Mailgun([]byte(old), key, "token-old", now))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Events) != 1 || n.Events[0].Kind != feedback.KindBounce || n.Events[0].Severity != "" {
		t.Errorf("reason old: %+v, want a bounce without the provider's verdict", n.Events)
	}
	// Mailgun's event ids are unique within a day only: the same id on an
	// event a day later names another event.
	later := strings.Replace(string(failed), `"timestamp": 1796644801.123`, `"timestamp": 1796731201.123`, 1)
	n, err = v.Verify(ctx, feedbacktest.Mailgun([]byte(later), key, "token-3", now))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Events) != 1 || n.Events[0].ID != "mg-failed-event-0001@1796731201.123" {
		t.Errorf("a day later: %+v", n.Events)
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
	testEvents(t, feedback.KindBounce, []eventCase{
		{"ses", "ses_bounce_mailboxfull.json", []eventGot{{"full@example.net", "temporary", "5.2.2",
			"smtp; 552 5.2.2 <full@example.net>: Mailbox full", "mailboxfull"}}},
		{"ses", "ses_bounce_suppressed.json", []eventGot{{"listed@example.net", "permanent", "", "", "userunknown"}}},
		{"sendgrid", "sendgrid_bounces.json", []eventGot{
			{"gone@example.net", "permanent", "5.1.1", "550 5.1.1 The email account that you tried to reach does not exist.", ""},
			{"full@example.net", "temporary", "4.2.2", "452 4.2.2 The email account that you tried to reach is over quota.", ""}}},
		{"postmark", "postmark_softbounce.json", []eventGot{{"full@example.net", "temporary", "", "smtp;552 5.2.2 Mailbox full", ""}}},
		{"postmark", "postmark_typecode.json", []eventGot{{"typo@example.net", "permanent", "", "", "userunknown"}}},
		{"postmark", "postmark_hardbounce_nodetails.json", []eventGot{{"gone@example.net", "permanent", "", "", ""}}},
		{"postmark", "postmark_autoresponder.json", nil},
	})
}

// TestDelays: a notice that the provider is still retrying (Mailgun's
// temporary failure, SendGrid's deferred, SES's DeliveryDelay, Postmark's
// Transient) is a delay, not a bounce, with the remote server's answer.
func TestDelays(t *testing.T) {
	testEvents(t, feedback.KindDelay, []eventCase{
		{"mailgun", "mailgun_failed_temporary.json", []eventGot{{"full@example.net", "temporary", "4.2.2",
			"452 The email account that you tried to reach is over quota.", ""}}},
		{"mailgun", "mailgun_failed_greylisted.json", []eventGot{{"slow@example.net", "temporary", "4.7.1",
			"451 Greylisted, please try again later", ""}}},
		{"sendgrid", "sendgrid_deferred.json", []eventGot{{"slow@example.net", "temporary", "",
			"451 4.7.1 Greylisted, please try again later", ""}}},
		{"ses", "ses_delivery_delay.json", []eventGot{{"slow@example.net", "temporary", "4.4.7",
			"smtp; 421 4.4.7 Service not available, try again later", ""}}},
		{"postmark", "postmark_transient.json", []eventGot{{"slow@example.net", "temporary", "",
			"smtp;451 4.7.1 Greylisted, please try again later", ""}}},
	})
}

type eventGot struct{ Recipient, Severity, Status, Diagnostic, Cause string }

type eventCase struct {
	provider, file string
	want           []eventGot
}

// testEvents verifies each case's notification, signed as its provider
// signs, and checks its events are of kind with the wanted fields.
func testEvents(t *testing.T, kind string, cases []eventCase) {
	t.Helper()
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
			v := &feedback.SNS{TopicARN: feedbacktest.TopicARN, Fetch: ses.Fetch, Now: clock, Roots: ses.Roots()}
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
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			n, err := verify[tc.provider](tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var out []eventGot
			for _, e := range n.Events {
				if e.Kind != kind {
					t.Errorf("kind %s, want %s", e.Kind, kind)
				}
				out = append(out, eventGot{e.Recipient, e.Severity, e.Status, e.Diagnostic, e.Cause})
			}
			if d := cmp.Diff(tc.want, out); d != "" {
				t.Error(d)
			}
		})
	}
}
