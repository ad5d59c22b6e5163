package console

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// messageView is the data of templates/message.html.
type messageView struct {
	Message store.Message
	Events  []store.Event
	// Payload is the stored request; nil once retention deleted it.
	Payload *payloadView
	// Cancellable says a recipient can still be cancelled and the key
	// may cancel.
	Cancellable bool
	// Notice is the outcome of an action just taken ("" for none).
	Notice string
}

// payloadView is what the message page shows of the stored request.
type payloadView struct {
	From, ReplyTo string
	To, Cc, Bcc   []string
	Headers       []headerView
	Text          string
	HasHTML       bool
	Attachments   []attachmentView
}

type headerView struct{ Name, Value string }

type attachmentView struct {
	Filename, ContentType, ContentID string
	Size                             int
}

// storedRequest is the part of the API's stored request (its wire form)
// that the page shows; the bodies are stored beside it.
type storedRequest struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc"`
	Bcc         []string          `json:"bcc"`
	ReplyTo     string            `json:"reply_to"`
	Headers     map[string]string `json:"headers"`
	Attachments []struct {
		Filename    string `json:"filename"`
		ContentType string `json:"content_type"`
		Content     string `json:"content"`
		ContentID   string `json:"content_id"`
	} `json:"attachments"`
}

// message is GET /console/messages/{id}: each recipient's status, SMTP
// code and relay answer, the event timeline, tags and metadata, headers,
// the text, the HTML in a sandboxed frame (messageHTML), the
// attachments, the raw MIME and cancel.
func (c *Console) message(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, id := r.Context(), r.PathValue("id")
	m, err := c.deps.Store.GetMessage(ctx, req.ProjectID, id)
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "There is no such message in this project.")
		return nil
	}
	if err != nil {
		return err
	}
	v := messageView{Message: m, Cancellable: req.Can(apikey.ScopeSend) && cancellable(m)}
	if v.Events, err = c.deps.Store.MessageEvents(ctx, req.ProjectID, id); err != nil {
		return err
	}
	p, err := c.deps.Store.MessagePayload(ctx, req.ProjectID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if v.Payload, err = toPayloadView(p); err != nil {
			return err
		}
	}
	if r.URL.Query().Get("cancelled") != "" {
		v.Notice = "The recipients not yet sent are cancelled."
	}
	return c.render(w, r, req, "message.html", "Message "+m.Subject, v)
}

// cancellable says a recipient of m is still queued, scheduled or
// deferred (what store.CancelMessage cancels).
func cancellable(m store.Message) bool {
	for _, rc := range m.Recipients {
		switch rc.Status {
		case store.StatusQueued, store.StatusScheduled, store.StatusDeferred:
			return true
		}
	}
	return false
}

func toPayloadView(p store.Payload) (*payloadView, error) {
	var sr storedRequest
	if err := json.Unmarshal(p.Request, &sr); err != nil {
		return nil, fmt.Errorf("stored request: %w", err)
	}
	v := &payloadView{From: sr.From, ReplyTo: sr.ReplyTo, To: sr.To, Cc: sr.Cc, Bcc: sr.Bcc,
		Text: p.Text, HasHTML: p.HTML != ""}
	for k, val := range sr.Headers {
		v.Headers = append(v.Headers, headerView{Name: k, Value: val})
	}
	sort.Slice(v.Headers, func(i, j int) bool { return v.Headers[i].Name < v.Headers[j].Name })
	for _, a := range sr.Attachments {
		v.Attachments = append(v.Attachments, attachmentView{Filename: a.Filename, ContentType: a.ContentType,
			ContentID: a.ContentID, Size: base64.StdEncoding.DecodedLen(len(a.Content))})
	}
	return v, nil
}

// messageHTML is GET /console/messages/{id}/html: the HTML body as sent,
// for the message page's <iframe sandbox>. Its own policy
// (messageHTMLPolicy) runs no script and loads nothing remote, even when
// the frame is opened on its own.
func (c *Console) messageHTML(w http.ResponseWriter, r *http.Request, req *request) error {
	p, err := c.deps.Store.MessagePayload(r.Context(), req.ProjectID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "This message's body is no longer stored.")
		return nil
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Security-Policy", messageHTMLPolicy)
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(p.HTML))
	return nil
}

// messageRaw is GET /console/messages/{id}/raw: the message as MIME,
// downloaded as ID.eml (Deps.BuildMIME says what it is).
func (c *Console) messageRaw(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, id := r.Context(), r.PathValue("id")
	if c.deps.BuildMIME == nil {
		c.renderError(w, r, req, http.StatusNotFound, "The raw message is not available here.")
		return nil
	}
	m, err := c.deps.Store.GetMessage(ctx, req.ProjectID, id)
	if err == nil {
		var p store.Payload
		if p, err = c.deps.Store.MessagePayload(ctx, req.ProjectID, id); err == nil {
			return c.writeMIME(w, m, p)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "This message, or its stored body, is gone.")
		return nil
	}
	return err
}

func (c *Console) writeMIME(w http.ResponseWriter, m store.Message, p store.Payload) error {
	raw, err := c.deps.BuildMIME(m, p)
	if err != nil {
		return fmt.Errorf("build MIME of %s: %w", m.ID, err)
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", `attachment; filename="`+m.ID+`.eml"`)
	_, _ = w.Write(raw)
	return nil
}

// cancelMessage is POST /console/messages/{id}/cancel: the API's cancel
// (Ops.CancelMessage), then back to the message.
func (c *Console) cancelMessage(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	_, err := c.deps.Ops.CancelMessage(r.Context(), req.ProjectID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.renderError(w, r, req, http.StatusNotFound, "There is no such message in this project.")
		return nil
	case errors.Is(err, store.ErrNotCancellable):
		c.renderError(w, r, req, http.StatusConflict, "Nothing is left to cancel: every recipient is sent or final.")
		return nil
	case err != nil:
		return err
	}
	http.Redirect(w, r, "/console/messages/"+id+"?cancelled=1", http.StatusSeeOther)
	return nil
}
