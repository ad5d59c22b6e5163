package store

// Payload is the stored form of a request the API accepted, read back by
// a delivery's start to build the message (Delivery.Payload). The text and
// HTML bodies, most of its bytes, have columns of their own so that
// nothing escapes or unescapes them; Request is the JSON of the rest of
// the request.
type Payload struct {
	// Request is the JSON of the request without its text and html.
	Request []byte
	Text    string
	HTML    string
}
