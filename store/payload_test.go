package store

import (
	"errors"
	"strings"
	"testing"
)

func TestPayloadFraming(t *testing.T) {
	for _, tt := range []struct{ name, head, text, html string }{
		{"both bodies", `{"from":"a@example.com"}`, "line 1\r\nline \"2\"\n", "<p>\x00é</p>"},
		{"text only", `{}`, strings.Repeat("x", 300), ""},
		{"empty", ``, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			head, text, html, framed, err := DecodePayload(EncodePayload([]byte(tt.head), tt.text, tt.html))
			if err != nil || !framed || string(head) != tt.head || text != tt.text || html != tt.html {
				t.Fatalf("round trip = %q %q %q framed %v err %v", head, text, html, framed, err)
			}
		})
	}
	t.Run("JSON alone", func(t *testing.T) {
		old := []byte(`{"text":"kept"}`)
		head, text, _, framed, err := DecodePayload(old)
		if err != nil || framed || string(head) != string(old) || text != "" {
			t.Fatalf("old payload = %q %q framed %v err %v", head, text, framed, err)
		}
	})
	good := EncodePayload([]byte(`{}`), "hello", "<p>hi</p>")
	for name, b := range map[string][]byte{
		"cut short":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 'x'),
		"length too big": append([]byte(payloadMagic), 0xff, 0xff, 0x01),
		"no parts":       []byte(payloadMagic),
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, _, _, err := DecodePayload(b); !errors.Is(err, ErrBadPayload) {
				t.Fatalf("err %v, want ErrBadPayload", err)
			}
		})
	}
}
