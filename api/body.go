package api

import (
	"bytes"
	"io"
	"net/http"
)

// Request bodies are read once: the OpenAPI validator reads a body to
// check it and hands the handler the same bytes (bufferedBody), and both
// read with the declared length as the first allocation, so a 1 MB batch
// is not copied again and again while its buffer doubles from 512 bytes.

// maxSizeHint bounds the buffer allocated up front from a Content-Length
// the client declared (a slow client must not hold much memory before it
// has sent anything); beyond it the buffer grows as the bytes arrive. A
// batch of 100 messages of 10 KB fits.
const maxSizeHint = 1 << 20

// bufferedBody is a request body already read into memory.
type bufferedBody struct {
	*bytes.Reader
	data []byte
}

// Close does nothing: the bytes stay readable.
func (*bufferedBody) Close() error { return nil }

// bufferBody reads req's body whole, leaves it on req as a bufferedBody
// and returns its bytes. A body that failed to read is left as read so
// far.
func bufferBody(req *http.Request) ([]byte, error) {
	data, err := bodyBytes(req)
	req.Body = &bufferedBody{Reader: bytes.NewReader(data), data: data}
	return data, err
}

// bodyBytes returns req's body: the bytes of a bufferedBody not read from
// yet, else everything read from it, into a buffer sized from
// Content-Length.
func bodyBytes(req *http.Request) ([]byte, error) {
	if b, ok := req.Body.(*bufferedBody); ok && b.Len() == len(b.data) {
		return b.data, nil
	}
	defer req.Body.Close()
	hint := req.ContentLength
	if hint < 0 || hint > maxSizeHint {
		hint = 0
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint+bytes.MinRead))
	_, err := buf.ReadFrom(req.Body)
	return buf.Bytes(), err
}

// bufferedBody is what http.Request.Body holds.
var _ io.ReadCloser = (*bufferedBody)(nil)
