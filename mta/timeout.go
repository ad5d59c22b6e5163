package mta

import (
	"net"
	"time"
)

// Timeouts bound each step of an SMTP session. Zero fields take the
// defaults of DefaultTimeouts. Tests shorten them.
type Timeouts struct {
	// Connect bounds the TCP connect. Default 30s.
	Connect time.Duration
	// Greeting bounds the TLS handshake, the 220 greeting, EHLO and
	// STARTTLS (RFC 5321 §4.5.3.2.1: 5 min).
	Greeting time.Duration
	// Mail bounds MAIL FROM, RSET and AUTH replies (§4.5.3.2.2: 5 min).
	Mail time.Duration
	// Rcpt bounds the RCPT TO reply (§4.5.3.2.3: 5 min).
	Rcpt time.Duration
	// DataInit bounds the 354 reply to DATA (§4.5.3.2.4: 2 min).
	DataInit time.Duration
	// DataBlock bounds each write of message data (§4.5.3.2.5: 3 min).
	DataBlock time.Duration
	// DataTerm bounds the reply to the final dot (§4.5.3.2.6: 10 min).
	DataTerm time.Duration
}

// DefaultTimeouts are the RFC 5321 §4.5.3.2 values (and 30s to connect).
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Connect:   30 * time.Second,
		Greeting:  5 * time.Minute,
		Mail:      5 * time.Minute,
		Rcpt:      5 * time.Minute,
		DataInit:  2 * time.Minute,
		DataBlock: 3 * time.Minute,
		DataTerm:  10 * time.Minute,
	}
}

// withDefaults replaces zero fields by DefaultTimeouts.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Connect, &d.Connect}, {&t.Greeting, &d.Greeting}, {&t.Mail, &d.Mail},
		{&t.Rcpt, &d.Rcpt}, {&t.DataInit, &d.DataInit}, {&t.DataBlock, &d.DataBlock},
		{&t.DataTerm, &d.DataTerm},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// timedConn is the raw connection under go-smtp's client (and under TLS).
// go-smtp sets one deadline of its own before each reply it reads; timedConn
// replaces it by the timeout of the current step, so each step gets its RFC
// 5321 §4.5.3.2 value. During DATA, each write gets writeTimeout. It also
// remembers whether a write failed, which tells a lost final dot from a
// lost reply. Deadlines are wall-clock times: the injected clock of the
// pool is not used here.
//
// During DATA it also gathers the message: go-smtp hands the dot-stuffed
// data over in 4 KiB pieces, and each would be a system call of its own.
// The pieces are kept (up to dataChunk bytes) and written together when
// the buffer is full or before the next read, which is the wait for the
// reply to the final dot.
type timedConn struct {
	net.Conn
	timeout      time.Duration // the current step's reply timeout
	writeTimeout time.Duration // per write during DATA; 0 otherwise
	writeErr     error         // the last write error since it was cleared
	gather       bool          // DATA: keep writes in pending until a read
	pending      []byte
}

// dataChunk bounds the data gathered into one write; each write gets the
// data-block timeout (RFC 5321 §4.5.3.2.5).
const dataChunk = 64 << 10

// SetDeadline applies the current step's timeout instead of go-smtp's
// value; a zero time (go-smtp clearing its deadline) passes through.
func (c *timedConn) SetDeadline(t time.Time) error {
	if t.IsZero() || c.timeout <= 0 {
		return c.Conn.SetDeadline(t)
	}
	return c.Conn.SetDeadline(time.Now().Add(c.timeout))
}

// startData begins the DATA phase: writes are gathered and each real
// write is bounded by block.
func (c *timedConn) startData(block time.Duration) {
	c.writeTimeout, c.gather = block, true
}

// endData ends the DATA phase; anything still gathered (the reply never
// was read) is dropped with the connection's state unknown, which the
// caller already treats as an error.
func (c *timedConn) endData() {
	c.writeTimeout, c.gather, c.pending = 0, false, c.pending[:0]
}

// Write gathers during DATA, else writes at once.
func (c *timedConn) Write(b []byte) (int, error) {
	if !c.gather {
		return c.write(b)
	}
	if len(c.pending)+len(b) > dataChunk {
		if err := c.flush(); err != nil {
			return 0, err
		}
		if len(b) > dataChunk {
			return c.write(b)
		}
	}
	c.pending = append(c.pending, b...)
	return len(b), nil
}

// Read sends what was gathered first: a reply is only awaited after the
// data it answers.
func (c *timedConn) Read(b []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// flush writes the gathered data.
func (c *timedConn) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.write(c.pending)
	c.pending = c.pending[:0]
	return err
}

// write bounds each block of data by writeTimeout when set, and records
// the failure of a write.
func (c *timedConn) write(b []byte) (int, error) {
	if c.writeTimeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.writeErr = err
	}
	return n, err
}
