package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)

// validRequest is a minimal valid message each case changes.
func validRequest() *MessageRequest {
	return &MessageRequest{
		From:    "Shop <orders@shop.example>",
		To:      []string{"ann@example.org"},
		Subject: "Your order",
		Text:    "hello",
	}
}

func wantFieldError(field, msg string) FieldError { return FieldError{Field: field, Message: msg} }

func TestLimitsWithDefaults(t *testing.T) {
	want := Limits{
		MaxRecipients: 50, MaxSubject: 998, MaxHeaderName: 76, MaxHeaderValue: 998,
		MaxTags: 10, MaxTagLength: 128, MaxMetadataKeys: 50, MaxMetadataKey: 64,
		MaxMetadataValue: 1000, MaxMessageBytes: 25 << 20, MaxScheduleAhead: 30 * 24 * time.Hour,
	}
	if diff := cmp.Diff(want, Limits{}.WithDefaults()); diff != "" {
		t.Errorf("zero Limits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Limits{MaxTags: -1}.WithDefaults()); diff != "" {
		t.Errorf("negative field (-want +got):\n%s", diff)
	}
	custom := Limits{MaxRecipients: 3, MaxMessageBytes: 10, MaxScheduleAhead: time.Hour}.WithDefaults()
	if custom.MaxRecipients != 3 || custom.MaxMessageBytes != 10 || custom.MaxScheduleAhead != time.Hour {
		t.Errorf("set fields changed: %+v", custom)
	}
}

func TestValidateMessageAccepts(t *testing.T) {
	sendAt := testNow.Add(2 * time.Hour)
	tests := []struct {
		name   string
		change func(*MessageRequest)
		want   *ValidMessage
	}{
		{"minimal", func(*MessageRequest) {}, &ValidMessage{
			From:       Address{Name: "Shop", Email: "orders@shop.example", Domain: "shop.example"},
			Recipients: []ValidRecipient{{Address{Email: "ann@example.org", Domain: "example.org"}, "to"}},
			Size:       5,
		}},
		{"recipients merged case-insensitively in order to, cc, bcc", func(r *MessageRequest) {
			r.To = []string{"ann@example.org", "Bob <bob@example.net>", "ANN@Example.org"}
			r.Cc = []string{"bob@EXAMPLE.net", "cat@example.com"}
			r.Bcc = []string{"Ann <Ann@example.org>", "dan@bücher.example"}
			r.ReplyTo = "Support <support@shop.example>"
			r.Text, r.HTML = "", "<p>hi</p>"
		}, &ValidMessage{
			From:    Address{Name: "Shop", Email: "orders@shop.example", Domain: "shop.example"},
			ReplyTo: &Address{Name: "Support", Email: "support@shop.example", Domain: "shop.example"},
			Recipients: []ValidRecipient{
				{Address{Email: "ann@example.org", Domain: "example.org"}, "to"},
				{Address{Name: "Bob", Email: "bob@example.net", Domain: "example.net"}, "to"},
				{Address{Email: "cat@example.com", Domain: "example.com"}, "cc"},
				{Address{Email: "dan@xn--bcher-kva.example", Domain: "xn--bcher-kva.example"}, "bcc"},
			},
			Size: 9,
		}},
		{"only bcc, size counts attachments decoded", func(r *MessageRequest) {
			r.To, r.Bcc = nil, []string{"ann@example.org"}
			r.Attachments = []AttachmentRequest{
				{Filename: "a.bin", ContentType: "application/octet-stream", Content: "AAECAwQ="},
				{Filename: "empty.txt", ContentType: "text/plain", Content: ""},
				{Filename: "logo.png", ContentType: "image/png", Content: "iVBORw==", ContentID: "logo@shop.example"},
			}
		}, &ValidMessage{
			From:       Address{Name: "Shop", Email: "orders@shop.example", Domain: "shop.example"},
			Recipients: []ValidRecipient{{Address{Email: "ann@example.org", Domain: "example.org"}, "bcc"}},
			Size:       5 + 5 + 0 + 4,
		}},
		{"send_at in the future, normalised to UTC", func(r *MessageRequest) {
			r.SendAt = sendAt.In(time.FixedZone("X", 3600)).Format(time.RFC3339)
		}, &ValidMessage{
			From:       Address{Name: "Shop", Email: "orders@shop.example", Domain: "shop.example"},
			Recipients: []ValidRecipient{{Address{Email: "ann@example.org", Domain: "example.org"}, "to"}},
			SendAt:     &sendAt,
			Size:       5,
		}},
		{"send_at within a second means now", func(r *MessageRequest) {
			r.SendAt = testNow.Add(500 * time.Millisecond).Format(time.RFC3339Nano)
		}, &ValidMessage{
			From:       Address{Name: "Shop", Email: "orders@shop.example", Domain: "shop.example"},
			Recipients: []ValidRecipient{{Address{Email: "ann@example.org", Domain: "example.org"}, "to"}},
			Size:       5,
		}},
		{"everything at its limit", func(r *MessageRequest) {
			r.Subject = strings.Repeat("é", 998)
			r.Headers = map[string]string{strings.Repeat("X", 76): strings.Repeat("v", 998), "X-Tab": "a\tb", "List-Unsubscribe": "<mailto:u@shop.example>"}
			r.Tags = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", strings.Repeat("t", 128)}
			r.Metadata = map[string]string{strings.Repeat("k", 64): strings.Repeat("v", 1000), "x": ""}
			r.SendAt = testNow.Add(30 * 24 * time.Hour).Format(time.RFC3339)
		}, &ValidMessage{
			From:       Address{Name: "Shop", Email: "orders@shop.example", Domain: "shop.example"},
			Recipients: []ValidRecipient{{Address{Email: "ann@example.org", Domain: "example.org"}, "to"}},
			SendAt:     ptrTime(testNow.Add(30 * 24 * time.Hour)),
			Size:       5,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			tt.change(req)
			got, fes, err := ValidateMessage(req, Limits{}, testNow, "")
			if err != nil || fes != nil {
				t.Fatalf("ValidateMessage: errors %v, %v", fes, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ValidateMessage (-want +got):\n%s", diff)
			}
		})
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

func recipientList(n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@%s", i, domain)
	}
	return out
}

func TestValidateMessageRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*MessageRequest)
		lim    Limits
		prefix string
		want   []FieldError
	}{
		{"from required", func(r *MessageRequest) { r.From = "" }, Limits{}, "", []FieldError{wantFieldError("/from", "is required")}},
		{"from invalid", func(r *MessageRequest) { r.From = "shop" }, Limits{}, "", []FieldError{wantFieldError("/from", "invalid email address")}},
		{"no recipient", func(r *MessageRequest) { r.To = nil }, Limits{}, "", []FieldError{wantFieldError("/to", "at least one recipient is required")}},
		{"empty recipient lists", func(r *MessageRequest) { r.To, r.Cc, r.Bcc = []string{}, []string{}, []string{} }, Limits{}, "",
			[]FieldError{wantFieldError("/to", "at least one recipient is required")}},
		{"bad recipients each named", func(r *MessageRequest) {
			r.To = []string{"ann@example.org", "x"}
			r.Cc = []string{""}
			r.Bcc = []string{"a@localhost", strings.Repeat("l", 65) + "@example.com"}
		}, Limits{}, "", []FieldError{
			wantFieldError("/to/1", "invalid email address"), wantFieldError("/cc/0", "invalid email address"),
			wantFieldError("/bcc/0", "domain is not a valid host name"), wantFieldError("/bcc/1", "local part longer than 64 octets"),
		}},
		{"51 distinct in to", func(r *MessageRequest) { r.To = recipientList(51, "example.org") }, Limits{}, "",
			[]FieldError{wantFieldError("/to", "at most 50 distinct recipients are allowed across to, cc and bcc")}},
		{"51st distinct in bcc", func(r *MessageRequest) {
			r.To = recipientList(30, "example.org")
			r.Cc = append(recipientList(20, "example.net"), "USER0@example.org")
			r.Bcc = []string{"user1@EXAMPLE.net", "new@example.com", "x"}
		}, Limits{}, "", []FieldError{wantFieldError("/bcc", "at most 50 distinct recipients are allowed across to, cc and bcc")}},
		{"50 distinct plus duplicates is fine but custom limit is not", func(r *MessageRequest) {
			r.To = []string{"a@example.org", "A@example.org", "b@example.org"}
			r.Cc = []string{"c@example.org"}
		}, Limits{MaxRecipients: 2}, "", []FieldError{wantFieldError("/cc", "at most 2 distinct recipients are allowed across to, cc and bcc")}},
		{"reply_to invalid", func(r *MessageRequest) { r.ReplyTo = "a@[192.0.2.1]" }, Limits{}, "",
			[]FieldError{wantFieldError("/reply_to", "IP address literals are not accepted")}},
		{"subject too long", func(r *MessageRequest) { r.Subject = strings.Repeat("é", 999) }, Limits{}, "",
			[]FieldError{wantFieldError("/subject", "must be at most 998 characters")}},
		{"subject custom limit", func(r *MessageRequest) { r.Subject = "abcd" }, Limits{MaxSubject: 3}, "",
			[]FieldError{wantFieldError("/subject", "must be at most 3 characters")}},
		{"body required", func(r *MessageRequest) { r.Text, r.HTML = "", "" }, Limits{}, "",
			[]FieldError{wantFieldError("/text", "text or html is required")}},
		{"header names", func(r *MessageRequest) {
			r.Headers = map[string]string{
				"X Space": "v", "X:Colon": "v", "X-Ünicode": "v", "": "v",
				strings.Repeat("X", 77): "v", "X-Ok": "v", "x-ok": "v",
			}
		}, Limits{}, "", []FieldError{
			wantFieldError("/headers/", "header name must not be empty"),
			wantFieldError("/headers/X Space", "header name must be printable ASCII without spaces or ':' (RFC 5322 §3.6.8)"),
			wantFieldError("/headers/X-Ünicode", "header name must be printable ASCII without spaces or ':' (RFC 5322 §3.6.8)"),
			wantFieldError("/headers/X:Colon", "header name must be printable ASCII without spaces or ':' (RFC 5322 §3.6.8)"),
			wantFieldError("/headers/"+strings.Repeat("X", 77), "header name must be at most 76 characters"),
			wantFieldError("/headers/x-ok", "duplicate header name (names are case-insensitive)"),
		}},
		{"header pointer escaped", func(r *MessageRequest) {
			r.Headers = map[string]string{"X-a/b~c": "\x01"}
		}, Limits{}, "", []FieldError{wantFieldError("/headers/X-a~1b~0c", "must not contain control characters")}},
		{"header value too long", func(r *MessageRequest) {
			r.Headers = map[string]string{"X-Order": strings.Repeat("v", 999)}
		}, Limits{}, "", []FieldError{wantFieldError("/headers/X-Order", "header value must be at most 998 characters")}},
		{"attachments", func(r *MessageRequest) {
			r.Attachments = []AttachmentRequest{
				{Filename: "", ContentType: "", Content: "AAEC", ContentID: "a b"},
				{Filename: "a.pdf", ContentType: "application/pdf; name=a.pdf", Content: "AAE=", ContentID: "<id@x>"},
				{Filename: "b", ContentType: "application", Content: "AA"},
				{Filename: "c", ContentType: "a b/c", Content: "AA=="},
				{Filename: "d", ContentType: "text/", Content: "AA==", ContentID: "same@x"},
				{Filename: "e", ContentType: "image/png", Content: "AA==", ContentID: "same@x"},
			}
		}, Limits{}, "", []FieldError{
			wantFieldError("/attachments/0/filename", "is required"),
			wantFieldError("/attachments/0/content_type", "is required"),
			wantFieldError("/attachments/0/content_id", "must be printable ASCII without spaces, '<' or '>'"),
			wantFieldError("/attachments/1/content_type", "must be a type/subtype media type without parameters, such as application/pdf"),
			wantFieldError("/attachments/1/content_id", "must be printable ASCII without spaces, '<' or '>'"),
			wantFieldError("/attachments/2/content_type", "must be a type/subtype media type without parameters, such as application/pdf"),
			wantFieldError("/attachments/2/content", "must be standard base64 with padding (RFC 4648 §4), without white space"),
			wantFieldError("/attachments/3/content_type", "must be a type/subtype media type without parameters, such as application/pdf"),
			wantFieldError("/attachments/4/content_type", "must be a type/subtype media type without parameters, such as application/pdf"),
			wantFieldError("/attachments/5/content_id", "duplicate content_id"),
		}},
		{"tags count", func(r *MessageRequest) { r.Tags = make([]string, 11) }, Limits{}, "",
			[]FieldError{wantFieldError("/tags", "at most 10 tags are allowed")}},
		{"tags each", func(r *MessageRequest) {
			r.Tags = []string{"ok", "", strings.Repeat("t", 129), "a\tb", "a\nb"}
		}, Limits{}, "", []FieldError{
			wantFieldError("/tags/1", "must not be empty"), wantFieldError("/tags/2", "must be at most 128 characters"),
			wantFieldError("/tags/3", "must not contain control characters"), wantFieldError("/tags/4", "must not contain CR, LF or NUL"),
		}},
		{"metadata count", func(r *MessageRequest) {
			r.Metadata = map[string]string{"a": "", "b": "", "c": ""}
		}, Limits{MaxMetadataKeys: 2}, "", []FieldError{wantFieldError("/metadata", "at most 2 keys are allowed")}},
		{"metadata each", func(r *MessageRequest) {
			r.Metadata = map[string]string{"": "v", strings.Repeat("k", 65): "v", "order/id": strings.Repeat("v", 1001), "ok": "line\nbreak"}
		}, Limits{}, "", []FieldError{
			wantFieldError("/metadata/", "key must not be empty"),
			wantFieldError("/metadata/"+strings.Repeat("k", 65), "key must be at most 64 characters"),
			wantFieldError("/metadata/order~1id", "value must be at most 1000 characters"),
		}},
		{"send_at unparseable", func(r *MessageRequest) { r.SendAt = "2026-12-01 09:00" }, Limits{}, "",
			[]FieldError{wantFieldError("/send_at", "must be an RFC 3339 date-time such as 2026-12-01T09:00:00Z")}},
		{"send_at in the past", func(r *MessageRequest) { r.SendAt = testNow.Add(-time.Second).Format(time.RFC3339) }, Limits{}, "",
			[]FieldError{wantFieldError("/send_at", "must be in the future")}},
		{"send_at too far ahead", func(r *MessageRequest) {
			r.SendAt = testNow.Add(30*24*time.Hour + time.Second).Format(time.RFC3339)
		}, Limits{}, "", []FieldError{wantFieldError("/send_at", "must be at most 30 days ahead")}},
		{"send_at custom limit", func(r *MessageRequest) { r.SendAt = testNow.Add(2 * time.Hour).Format(time.RFC3339) },
			Limits{MaxScheduleAhead: 90 * time.Minute}, "", []FieldError{wantFieldError("/send_at", "must be at most 1h30m0s ahead")}},
		{"batch prefix and field order", func(r *MessageRequest) {
			r.From, r.To, r.Subject, r.Text = "", nil, "a\rb", ""
			r.Tags = []string{""}
			r.SendAt = "never"
		}, Limits{}, "/messages/3", []FieldError{
			wantFieldError("/messages/3/from", "is required"),
			wantFieldError("/messages/3/to", "at least one recipient is required"),
			wantFieldError("/messages/3/subject", "must not contain CR, LF or NUL"),
			wantFieldError("/messages/3/text", "text or html is required"),
			wantFieldError("/messages/3/tags/0", "must not be empty"),
			wantFieldError("/messages/3/send_at", "must be an RFC 3339 date-time such as 2026-12-01T09:00:00Z"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			tt.change(req)
			got, fes, err := ValidateMessage(req, tt.lim, testNow, tt.prefix)
			if err != nil || got != nil {
				t.Fatalf("ValidateMessage = %+v, %v; want field errors", got, err)
			}
			if diff := cmp.Diff(tt.want, fes); diff != "" {
				t.Errorf("field errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateMessageInjection puts CR, LF and NUL into every value that
// ends up in a header.
func TestValidateMessageInjection(t *testing.T) {
	const msg = "must not contain CR, LF or NUL"
	tests := []struct {
		name   string
		change func(r *MessageRequest, bad string)
		field  string
	}{
		{"from name", func(r *MessageRequest, bad string) { r.From = "Shop" + bad + " <orders@shop.example>" }, "/from"},
		{"to", func(r *MessageRequest, bad string) { r.To = []string{"ann@example.org" + bad} }, "/to/0"},
		{"cc", func(r *MessageRequest, bad string) { r.Cc = []string{bad + "cat@example.org"} }, "/cc/0"},
		{"bcc name", func(r *MessageRequest, bad string) { r.Bcc = []string{`"D` + bad + `" <d@example.org>`} }, "/bcc/0"},
		{"reply_to", func(r *MessageRequest, bad string) { r.ReplyTo = "s@shop.example" + bad }, "/reply_to"},
		{"subject", func(r *MessageRequest, bad string) { r.Subject = "Hi" + bad + "Bcc: x@evil.example" }, "/subject"},
		{"header name", func(r *MessageRequest, bad string) { r.Headers = map[string]string{"X-A" + bad: "v"} }, "/headers/X-A"},
		{"header value", func(r *MessageRequest, bad string) { r.Headers = map[string]string{"X-A": "v" + bad} }, "/headers/X-A"},
		{"filename", func(r *MessageRequest, bad string) {
			r.Attachments = []AttachmentRequest{{Filename: "a" + bad, ContentType: "text/plain"}}
		}, "/attachments/0/filename"},
		{"content_type", func(r *MessageRequest, bad string) {
			r.Attachments = []AttachmentRequest{{Filename: "a", ContentType: "text/plain" + bad}}
		}, "/attachments/0/content_type"},
		{"content_id", func(r *MessageRequest, bad string) {
			r.Attachments = []AttachmentRequest{{Filename: "a", ContentType: "text/plain", ContentID: "id" + bad}}
		}, "/attachments/0/content_id"},
	}
	for _, tt := range tests {
		for _, bad := range []string{"\r", "\n", "\r\n", "\x00"} {
			t.Run(fmt.Sprintf("%s %q", tt.name, bad), func(t *testing.T) {
				req := validRequest()
				tt.change(req, bad)
				_, fes, err := ValidateMessage(req, Limits{}, testNow, "")
				if err != nil {
					t.Fatal(err)
				}
				field := tt.field
				if strings.HasPrefix(field, "/headers/X-A") && strings.Contains(tt.name, "name") {
					field += bad // the pointer names the key as given
				}
				if diff := cmp.Diff([]FieldError{wantFieldError(field, msg)}, fes); diff != "" {
					t.Errorf("field errors (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestValidateMessageReservedHeaders(t *testing.T) {
	for _, name := range []string{
		"From", "to", "CC", "Bcc", "Subject", "Date", "Message-ID", "message-id", "DKIM-Signature",
		"Return-Path", "MIME-Version", "Content-Type", "content-transfer-encoding", "Content-X",
		"Received", "X-Mailgate-ID", "x-mailgate-anything", "Reply-To", "Sender", "Feedback-ID",
	} {
		t.Run(name, func(t *testing.T) {
			req := validRequest()
			req.Headers = map[string]string{name: "v"}
			_, fes, err := ValidateMessage(req, Limits{}, testNow, "")
			if err != nil {
				t.Fatal(err)
			}
			want := []FieldError{wantFieldError("/headers/"+name, "header is set by mailgate and cannot be given")}
			if diff := cmp.Diff(want, fes); diff != "" {
				t.Errorf("field errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateMessageBase64(t *testing.T) {
	tests := []struct {
		name    string
		content string
		size    int64 // -1: refused
	}{
		{"empty", "", 0},
		{"no padding needed", "AAEC", 3},
		{"one pad", "AAE=", 2},
		{"two pads", "AA==", 1},
		{"missing padding", "AA", -1},
		{"url-safe alphabet", "-_-_", -1},
		{"crlf line break", "AAEC\r\nAAEC", -1},
		{"lf line break", "AAEC\nAAEC", -1},
		{"space", "AAEC AAE", -1},
		{"padding in the middle", "AA==AAEC", -1},
		{"three pads", "A===", -1},
		{"non-zero padding bits", "AB==", -1},
		{"garbage after pad", "AA=A", -1},
		{"not base64", "!!!!", -1},
		{"large", base64.StdEncoding.EncodeToString(make([]byte, 100000)), 100000},
		{"padding after a 1024-byte chunk", base64.StdEncoding.EncodeToString(make([]byte, 767)) + "AAEC", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			req.Attachments = []AttachmentRequest{{Filename: "f", ContentType: "application/octet-stream", Content: tt.content}}
			vm, fes, err := ValidateMessage(req, Limits{}, testNow, "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.size < 0 {
				want := []FieldError{wantFieldError("/attachments/0/content", msgContent)}
				if diff := cmp.Diff(want, fes); diff != "" {
					t.Errorf("field errors (-want +got):\n%s", diff)
				}
				return
			}
			if fes != nil {
				t.Fatalf("field errors %v", fes)
			}
			if want := int64(len("hello")) + tt.size; vm.Size != want {
				t.Errorf("Size = %d, want %d", vm.Size, want)
			}
		})
	}
}

func TestValidateMessageTooLarge(t *testing.T) {
	tests := []struct {
		name   string
		change func(*MessageRequest)
		lim    Limits
		large  bool
	}{
		{"text at limit", func(r *MessageRequest) { r.Text = strings.Repeat("x", 10) }, Limits{MaxMessageBytes: 10}, false},
		{"text over limit", func(r *MessageRequest) { r.Text = strings.Repeat("x", 11) }, Limits{MaxMessageBytes: 10}, true},
		{"text and html", func(r *MessageRequest) { r.Text, r.HTML = "12345", "123456" }, Limits{MaxMessageBytes: 10}, true},
		{"decoded attachment counts, not base64 length", func(r *MessageRequest) {
			r.Text = "1"
			r.Attachments = []AttachmentRequest{{Filename: "f", ContentType: "a/b", Content: base64.StdEncoding.EncodeToString(make([]byte, 9))}}
		}, Limits{MaxMessageBytes: 10}, false},
		{"attachment over", func(r *MessageRequest) {
			r.Text = "12"
			r.Attachments = []AttachmentRequest{{Filename: "f", ContentType: "a/b", Content: base64.StdEncoding.EncodeToString(make([]byte, 9))}}
		}, Limits{MaxMessageBytes: 10}, true},
		{"too large wins over field errors", func(r *MessageRequest) {
			r.From, r.Text = "", strings.Repeat("x", 11)
		}, Limits{MaxMessageBytes: 10}, true},
		{"default 25 MiB", func(r *MessageRequest) {
			r.Text = "x"
			r.Attachments = []AttachmentRequest{{Filename: "f", ContentType: "a/b", Content: base64.StdEncoding.EncodeToString(make([]byte, 25<<20))}}
		}, Limits{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			tt.change(req)
			vm, fes, err := ValidateMessage(req, tt.lim, testNow, "")
			if got := errors.Is(err, ErrTooLarge); got != tt.large {
				t.Fatalf("errors.Is(err, ErrTooLarge) = %v, want %v (err %v, fields %v)", got, tt.large, err, fes)
			}
			if tt.large && (vm != nil || fes != nil) {
				t.Errorf("too large but also returned %+v, %v", vm, fes)
			}
			if !tt.large && (vm == nil || vm.Size > tt.lim.MaxMessageBytes) {
				t.Errorf("got %+v, %v", vm, fes)
			}
		})
	}
}

// TestValidateMessageLargeAttachmentMemory checks that validating a 24 MiB
// attachment does not allocate its decoded bytes.
func TestValidateMessageLargeAttachmentMemory(t *testing.T) {
	req := validRequest()
	req.Attachments = []AttachmentRequest{{Filename: "f", ContentType: "a/b", Content: base64.StdEncoding.EncodeToString(make([]byte, 24<<20))}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, fes, err := ValidateMessage(req, Limits{}, testNow, ""); err != nil || fes != nil {
		t.Fatal(fes, err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("validating a 24 MiB attachment allocated %d bytes", n)
	}
}

// loadTypical reads the typical 2 KB request of testdata/validate.
func loadTypical(tb testing.TB) *MessageRequest {
	tb.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "validate", "typical.json"))
	if err != nil {
		tb.Fatal(err)
	}
	req, fes, err := DecodeMessageRequest(body)
	if err != nil || fes != nil {
		tb.Fatalf("decode typical.json: %v %v", fes, err)
	}
	return req
}

func TestValidateMessageTypical(t *testing.T) {
	vm, fes, err := ValidateMessage(loadTypical(t), Limits{}, testNow, "")
	if err != nil || fes != nil {
		t.Fatalf("ValidateMessage: %v %v", fes, err)
	}
	var got []string
	for _, r := range vm.Recipients {
		got = append(got, r.Kind+":"+r.Email)
	}
	want := []string{"to:ann@example.org", "to:bob@example.net", "cc:carol@xn--bcher-kva.example"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
}

func BenchmarkValidateMessage(b *testing.B) {
	req := loadTypical(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, fes, err := ValidateMessage(req, Limits{}, testNow, ""); err != nil || fes != nil {
			b.Fatal(fes, err)
		}
	}
}
