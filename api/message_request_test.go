package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeMessageRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *MessageRequest
	}{
		{"all fields", `{"from":"a@example.com","to":["b@example.org"],"cc":["c@example.org"],"bcc":["d@example.org"],
			"reply_to":"r@example.com","subject":"s","text":"t","html":"<p>h</p>","headers":{"X-A":"1"},
			"attachments":[{"filename":"f","content_type":"a/b","content":"AA==","content_id":"i"}],
			"tags":["x"],"metadata":{"k":"v"},"send_at":"2026-12-01T09:00:00Z"}`,
			&MessageRequest{From: "a@example.com", To: []string{"b@example.org"}, Cc: []string{"c@example.org"},
				Bcc: []string{"d@example.org"}, ReplyTo: "r@example.com", Subject: "s", Text: "t", HTML: "<p>h</p>",
				Headers:     map[string]string{"X-A": "1"},
				Attachments: []AttachmentRequest{{Filename: "f", ContentType: "a/b", Content: "AA==", ContentID: "i"}},
				Tags:        []string{"x"}, Metadata: map[string]string{"k": "v"}, SendAt: "2026-12-01T09:00:00Z"}},
		{"empty object", `{}`, &MessageRequest{}},
		{"white space around", " \n\t{\"subject\":\"s\"}\r\n ", &MessageRequest{Subject: "s"}},
		{"nulls leave fields empty", `{"from":null,"to":null,"headers":null,"attachments":[null],"tags":[null]}`,
			&MessageRequest{Attachments: []AttachmentRequest{{}}, Tags: []string{""}}},
		{"names match case-insensitively", `{"FROM":"a@example.com","Reply_To":"r@example.com"}`,
			&MessageRequest{From: "a@example.com", ReplyTo: "r@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fes, err := DecodeMessageRequest([]byte(tt.body))
			if err != nil || fes != nil {
				t.Fatalf("DecodeMessageRequest: %v %v", fes, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeMessageRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeMessageRequestFieldErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []FieldError
	}{
		{"string for array", `{"to":"a@b"}`, []FieldError{wantFieldError("/to", "must be an array of strings")}},
		{"number in array", `{"to":[1]}`, []FieldError{wantFieldError("/to/0", "must be a string")}},
		{"unknown field", `{"bogus":1}`, []FieldError{wantFieldError("/bogus", "unknown field")}},
		{"number for string", `{"subject":5}`, []FieldError{wantFieldError("/subject", "must be a string")}},
		{"every bad field in field order", `{"zzz":true,"send_at":1,"metadata":{"b":1,"a":[]},"tags":{},
			"attachments":[{"filename":1,"content":"AA==","extra":""},"x"],"headers":"h","subject":[],
			"bcc":[true,"ok",{}],"from":{},"aaa":null}`, []FieldError{
			wantFieldError("/from", "must be a string"),
			wantFieldError("/bcc/0", "must be a string"), wantFieldError("/bcc/2", "must be a string"),
			wantFieldError("/subject", "must be a string"),
			wantFieldError("/headers", "must be an object with string values"),
			wantFieldError("/attachments/0/filename", "must be a string"), wantFieldError("/attachments/0/extra", "unknown field"),
			wantFieldError("/attachments/1", "must be an object"),
			wantFieldError("/tags", "must be an array of strings"),
			wantFieldError("/metadata/a", "must be a string"), wantFieldError("/metadata/b", "must be a string"),
			wantFieldError("/send_at", "must be a string"),
			wantFieldError("/aaa", "unknown field"), wantFieldError("/zzz", "unknown field"),
		}},
		{"attachments not an array", `{"attachments":{}}`, []FieldError{wantFieldError("/attachments", "must be an array of objects")}},
		{"pointer escaping", `{"a/b~c":1,"headers":{"X/Y":2}}`, []FieldError{
			wantFieldError("/headers/X~1Y", "must be a string"), wantFieldError("/a~1b~0c", "unknown field"),
		}},
		{"repeated member, first of the wrong type", `{"to":1,"to":["a@example.com"]}`,
			[]FieldError{wantFieldError("/to", "has a value of the wrong type (is a member name repeated?)")}},
		{"repeated nested member", `{"attachments":[{"filename":1,"filename":"f"}]}`,
			[]FieldError{wantFieldError("/attachments/filename", "has a value of the wrong type (is a member name repeated?)")}},
		{"big number", `{"text":1e999}`, []FieldError{wantFieldError("/text", "must be a string")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, fes, err := DecodeMessageRequest([]byte(tt.body))
			if err != nil || req != nil {
				t.Fatalf("DecodeMessageRequest = %+v, %v; want field errors", req, err)
			}
			if diff := cmp.Diff(tt.want, fes); diff != "" {
				t.Errorf("field errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeMessageRequestMalformed(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", ``, "malformed JSON: the body must be a JSON object"},
		{"array", `[{}]`, "malformed JSON: the body must be a JSON object"},
		{"null", `null`, "malformed JSON: the body must be a JSON object"},
		{"string", `"x"`, "malformed JSON: the body must be a JSON object"},
		{"syntax error", `{"from": x}`, "malformed JSON: at byte 10: invalid character 'x' looking for beginning of value"},
		{"truncated", `{"from": "a`, "malformed JSON: unexpected end of input"},
		{"trailing object", `{}{}`, "malformed JSON: trailing data after the object at byte 2"},
		{"trailing garbage", `{} x`, "malformed JSON: trailing data after the object at byte 2"},
		{"syntax error beats type error", `{"to":"a", }`, "malformed JSON: at byte 12: invalid character '}' looking for beginning of object key string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, fes, err := DecodeMessageRequest([]byte(tt.body))
			if !errors.Is(err, ErrMalformedJSON) || req != nil || fes != nil {
				t.Fatalf("DecodeMessageRequest = %+v, %v, %v; want ErrMalformedJSON", req, fes, err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// caseWant is a testdata/validate/cases/*.want.json file: what decoding
// and then validating the request beside it must give.
type caseWant struct {
	Malformed bool         `json:"malformed"`
	TooLarge  bool         `json:"too_large"`
	Errors    []FieldError `json:"errors"`
}

// TestValidateCases decodes and validates each request fixture in
// testdata/validate/cases, as the handler does, under the batch prefix
// "/messages/0" when the file name starts with "batch_".
func TestValidateCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "validate", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".want.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, want := readCase(t, file)
			prefix := ""
			if strings.HasPrefix(name, "batch_") {
				prefix = "/messages/0"
			}
			if diff := cmp.Diff(want, runCase(body, prefix)); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
	if n == 0 {
		t.Fatal("no fixtures found")
	}
}

func readCase(t *testing.T, file string) ([]byte, caseWant) {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".want.json")
	if err != nil {
		t.Fatal(err)
	}
	var want caseWant
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	return body, want
}

// runCase is the handler's sequence: decode, then validate.
func runCase(body []byte, prefix string) caseWant {
	req, fes, err := DecodeMessageRequest(body)
	if err != nil {
		return caseWant{Malformed: true}
	}
	if fes != nil {
		for i := range fes {
			fes[i].Field = prefix + fes[i].Field
		}
		return caseWant{Errors: fes}
	}
	_, fes, err = ValidateMessage(req, Limits{}, testNow, prefix)
	return caseWant{TooLarge: errors.Is(err, ErrTooLarge), Errors: fes}
}

func FuzzDecodeMessageRequest(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "validate", "*.json"))
	cases, _ := filepath.Glob(filepath.Join("testdata", "validate", "cases", "*.json"))
	for _, file := range append(files, cases...) {
		if body, err := os.ReadFile(file); err == nil {
			f.Add(body)
		}
	}
	for _, s := range []string{`{}`, `{"to":"a@b"}`, `{"to":[1]}`, `{"bogus":1}`, `{"subject":5}`, `[]`, `null`,
		`{"attachments":[{"x":1},null,3]}`, `{"headers":{"a":null,"b":[]}}`, `{} {}`, `{"FROM":"x"}`, `{"text":1e999}`,
		`{"subject":"a","subject":"b"}`, "{\"subject\":\"caf\xe9\"}", `{"subject":"\ud800"}`, `{"reply-to":"a@b"}`,
		`{"replyto":"a@b"}`, `{"to":null,"cc":[null],"headers":{"X-A":null},"attachments":[null]}`, ` {"from":"a@b"} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, fes, err := DecodeMessageRequest(body)
		// The fast path (decodeExact) never changes the outcome.
		req1, fes1, err1 := decodeMessageRequestV1(body)
		if bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
			if diff := cmp.Diff(fmt.Sprint(req1, fes1, err1), fmt.Sprint(req, fes, err)); diff != "" {
				t.Fatalf("DecodeMessageRequest differs from encoding/json alone (-v1 +got):\n%s", diff)
			}
		}
		outcomes := 0
		for _, ok := range []bool{req != nil, fes != nil, err != nil} {
			if ok {
				outcomes++
			}
		}
		if outcomes != 1 {
			t.Fatalf("want exactly one of request, field errors, error; got %v %v %v", req, fes, err)
		}
		// Any valid JSON object is decoded or gets field errors.
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if err != nil && json.Valid(body) && len(trimmed) > 0 && trimmed[0] == '{' {
			t.Fatalf("valid JSON object refused as malformed: %v", err)
		}
		if req != nil {
			// Validation never panics on whatever was decoded.
			_, _, _ = ValidateMessage(req, Limits{}, testNow, "/messages/0")
		}
	})
}

func BenchmarkDecodeMessageRequest(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "validate", "typical.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, fes, err := DecodeMessageRequest(body); err != nil || fes != nil {
			b.Fatal(fes, err)
		}
	}
}

// TestDecodeBatchMatchesEncodingJSON: the batch body is split as
// encoding/json splits it, whichever path decodes it.
func TestDecodeBatchMatchesEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"messages":[{"from":"a@b"},{"to":["c@d"]}]}`,
		`{"messages":[ {"from" : "a@b"} , null, 3, "x", [1]]}`,
		`{"Messages":[{}]}`,
		`{"messages":[{}],"messages":[{},{}]}`,
		`{"messages":[{}],"other":1}`,
		"{\"messages\":[{\"subject\":\"caf\xe9\"}]}",
		`{"messages":null}`,
		`{"messages":{}}`,
		`{"messages":[{}]} x`,
	} {
		t.Run(body, func(t *testing.T) {
			var want batchRequest
			wantErr := json.Unmarshal([]byte(body), &want)
			got, err := decodeBatch([]byte(body))
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("decodeBatch error %v, encoding/json error %v", err, wantErr)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(batchRequest{})); diff != "" {
				t.Errorf("decodeBatch differs from encoding/json (-want +got):\n%s", diff)
			}
		})
	}
}
