package worker

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/store"
)

// TestDecodePayloadAgreesWithEncodingJSON: the fast path and its fallback
// read every stored payload as encoding/json does, including ones the
// API would not write (other case, repeated members, invalid UTF-8).
func TestDecodePayloadAgreesWithEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"as the API writes it", `{"from":"A <a@shop.example>","to":["b@example.org"],"subject":"Hi","text":"line\nline","html":"<p>x</p>","headers":{"X-A":"1"},"tags":["t"],"attachments":[{"filename":"a.txt","content_type":"text/plain","content":"aGk="}]}`},
		{"member names in another case", `{"From":"a@shop.example","TO":["b@example.org"],"Subject":"Hi"}`},
		{"a repeated member: the last wins", `{"from":"a@shop.example","subject":"one","subject":"two"}`},
		{"invalid UTF-8 is replaced", "{\"from\":\"a@shop.example\",\"subject\":\"caf\xe9\"}"},
		{"unknown members are ignored", `{"from":"a@shop.example","bcc":["c@example.org"],"metadata":{"k":"v"},"send_at":"2026-12-01T09:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want payload
			if err := json.Unmarshal([]byte(tt.in), &want); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			got, err := decodePayloadJSON([]byte(tt.in))
			if err != nil {
				t.Fatalf("decodePayloadJSON: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decodePayloadJSON differs from encoding/json (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := decodePayload(store.Payload{Request: []byte(`{"from":`)}); err == nil {
		t.Error("decodePayload accepted a truncated payload")
	}
}

// TestPayloadFastPathKnowsEveryMember: a payload as the API writes it,
// every member set, takes the fast path; a member added to
// api.MessageRequest without being named in payload would silently send
// every payload to encoding/json.
func TestPayloadFastPathKnowsEveryMember(t *testing.T) {
	req := api.MessageRequest{From: "a@shop.example", To: []string{"b@example.org"}, Cc: []string{"c@example.org"},
		Bcc: []string{"d@example.org"}, ReplyTo: "r@shop.example", Subject: "s", Text: "t", HTML: "<p>h</p>",
		Headers: map[string]string{"X-A": "1"}, Tags: []string{"t"}, Metadata: map[string]string{"k": "v"},
		SendAt:      "2026-12-01T09:00:00Z",
		Attachments: []api.AttachmentRequest{{Filename: "a.png", ContentType: "image/png", Content: "aGk=", ContentID: "logo"}}}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var p payload
	if err := decodePayloadExact(b, &p); err != nil {
		t.Fatalf("the fast path refused the API's payload %s: %v", b, err)
	}
}

// TestDecodePayloadColumns: a payload as the API stores it (the request
// JSON without its bodies, the bodies beside it) reads the same as the
// whole request in JSON, bodies with quotes, newlines and non-ASCII kept
// byte for byte.
func TestDecodePayloadColumns(t *testing.T) {
	req := api.MessageRequest{From: "A <a@shop.example>", To: []string{"b@example.org"}, Subject: "Hi",
		Text: "line \"1\"\r\nline\n\tcafé \\ end", HTML: "<p class=\"x\">été</p>\n",
		Headers: map[string]string{"X-A": "1"}, Tags: []string{"t"},
		Attachments: []api.AttachmentRequest{{Filename: "a.txt", ContentType: "text/plain", Content: "aGk="}}}
	whole, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodePayloadJSON(whole)
	if err != nil {
		t.Fatal(err)
	}
	head := req
	head.Text, head.HTML = "", ""
	hb, err := json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePayload(store.Payload{Request: hb, Text: req.Text, HTML: req.HTML})
	if err != nil {
		t.Fatalf("decodePayload: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored payload differs (-whole +columns):\n%s", diff)
	}
}
