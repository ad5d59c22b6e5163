package api

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestBodyReadOnce(t *testing.T) {
	body := strings.Repeat(`{"messages": []}`, 1000)
	for _, tc := range []struct {
		name   string
		length int64
	}{
		{"declared length", int64(len(body))},
		{"chunked", -1},
		{"declared length beyond the hint bound", maxSizeHint + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "/v1/messages", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tc.length
			first, err := bufferBody(req)
			if err != nil || string(first) != body {
				t.Fatalf("validator read %d bytes, %v; want the body", len(first), err)
			}
			second, err := bodyBytes(req)
			if err != nil || string(second) != body {
				t.Fatalf("handler read %d bytes, %v; want the body", len(second), err)
			}
			if &first[0] != &second[0] {
				t.Error("the handler got a copy, not the validator's bytes")
			}
		})
	}
	t.Run("a buffered body read from is read on", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "/v1/messages", strings.NewReader("abcdef"))
		if _, err := bufferBody(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(req.Body, make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
		if rest, err := bodyBytes(req); err != nil || !bytes.Equal(rest, []byte("cdef")) {
			t.Fatalf("rest = %q, %v; want cdef", rest, err)
		}
	})
}
