// Package queue owns mailgate's task schedule in Redis: the asynq task
// types, their payloads (ids only, never message bodies) and enqueueing.
// The database is the truth; the queue is only the schedule, so every
// enqueue here is idempotent (the asynq TaskID is the message id) and a
// lost enqueue is healed by the worker's reconciler.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Task types.
const (
	// TypeSend delivers one message: payload SendPayload.
	TypeSend = "send"
)

// Queue names and their asynq priorities.
const (
	QueueSend = "send"
)

// Queues maps queue names to asynq priority weights, for the worker's
// asynq server.
func Queues() map[string]int { return map[string]int{QueueSend: 10} }

// SendPayload is the payload of a TypeSend task.
type SendPayload struct {
	MessageID string `json:"message_id"`
}

// Config configures a Client.
type Config struct {
	// MaxRetry is the asynq retry budget of a send task. The send handler
	// enforces the real 72-hour lifetime itself, so this only needs to be
	// large. Default 1000.
	MaxRetry int
	// Timeout bounds one run of a send task; it is longer than a whole
	// SMTP transaction under RFC 5321 §4.5.3.2's timeouts (about 31
	// minutes at worst). A run cut short is retried like any deferral.
	// Default 1 hour.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxRetry == 0 {
		c.MaxRetry = 1000
	}
	if c.Timeout == 0 {
		c.Timeout = time.Hour
	}
	return c
}

// Client enqueues tasks.
type Client struct {
	cfg Config
	ac  *asynq.Client
	in  *asynq.Inspector
}

// New returns a Client on the given Redis connection. Close the Client,
// then the connection.
func New(cfg Config, rdb redis.UniversalClient) *Client {
	return &Client{
		cfg: cfg.withDefaults(),
		ac:  asynq.NewClientFromRedisClient(rdb),
		in:  asynq.NewInspectorFromRedisClient(rdb),
	}
}

// Close releases the asynq client (not the Redis connection).
func (c *Client) Close() error { return nil }

// EnqueueSend schedules the send task of a message, at processAt when it is
// in the future. A task that already exists for the message is not an
// error: the enqueue is idempotent.
func (c *Client) EnqueueSend(ctx context.Context, messageID string, processAt time.Time) error {
	payload, err := json.Marshal(SendPayload{MessageID: messageID})
	if err != nil {
		return fmt.Errorf("encode send payload: %w", err)
	}
	opts := []asynq.Option{
		asynq.TaskID(messageID),
		asynq.Queue(QueueSend),
		asynq.MaxRetry(c.cfg.MaxRetry),
		asynq.Timeout(c.cfg.Timeout),
	}
	if !processAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(processAt))
	}
	_, err = c.ac.EnqueueContext(ctx, asynq.NewTask(TypeSend, payload), opts...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue send %s: %w", messageID, err)
	}
	return nil
}

// CancelSend removes a message's pending or scheduled send task. A task
// that does not exist, or is running, is left alone: the send handler
// re-reads the recipients' statuses before sending.
func (c *Client) CancelSend(messageID string) error {
	err := c.in.DeleteTask(QueueSend, messageID)
	if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil
	}
	if strings.Contains(err.Error(), "active") {
		return nil
	}
	return fmt.Errorf("delete send task %s: %w", messageID, err)
}

// ParseSendPayload decodes a TypeSend task's payload.
func ParseSendPayload(b []byte) (SendPayload, error) {
	var p SendPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode send payload: %w", err)
	}
	if p.MessageID == "" {
		return p, errors.New("decode send payload: no message_id")
	}
	return p, nil
}
