package console_test

import (
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/console"
)

func TestRawMIME(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(apikey.ScopeSend, apikey.ScopeRead)
	id := e.sendMessage(token, `{"from":"Shop <a@shop.example>","to":["b@example.org"],"subject":"Raw one",
		"text":"plain body","html":"<p>html body</p>",
		"attachments":[{"filename":"a.txt","content_type":"text/plain","content":"aGk="}]}`)
	b := e.browser()
	b.signIn(token)
	r := b.get("/console/messages/" + id + "/raw")
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("raw: %d %q", r.code, r.header.Get("Content-Type"))
	}
	if _, params, _ := mime.ParseMediaType(r.header.Get("Content-Disposition")); params["filename"] != id+".eml" {
		t.Errorf("Content-Disposition %q", r.header.Get("Content-Disposition"))
	}
	m, err := mail.ReadMessage(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got := m.Header.Get("Subject"); got != "Raw one" {
		t.Errorf("Subject %q", got)
	}
	body, _ := io.ReadAll(m.Body)
	for _, want := range []string{"plain body", "html body", "filename=a.txt"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the MIME lacks %q", want)
		}
	}
	if strings.Contains(r.body, "DKIM-Signature") {
		t.Error("the rebuilt MIME claims a signature")
	}
	if r := b.get("/console/messages/nope/raw"); r.code != http.StatusNotFound {
		t.Errorf("raw of an unknown message: %d", r.code)
	}
}
