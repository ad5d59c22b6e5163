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
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Task types.
const (
	// TypeSend delivers one message: payload SendPayload.
	TypeSend = "send"
	// TypeSendBatch makes the first attempt at every message of one batch
	// request: payload SendBatchPayload. A message it cannot finish gets a
	// TypeSend task of its own for its later attempts.
	TypeSendBatch = "send_batch"
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
	// Retried counts the failed attempts made before this task existed (by
	// a batch task), so that the retry schedule goes on where it was.
	Retried int `json:"retried,omitempty"`
}

// SendBatchPayload is the payload of a TypeSendBatch task.
type SendBatchPayload struct {
	MessageIDs []string `json:"message_ids"`
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
	return c.EnqueueSendRetried(ctx, messageID, processAt, 0)
}

// EnqueueSendRetried is EnqueueSend for a message that already had
// retried failed attempts (in a batch task): its retry delays go on from
// there.
func (c *Client) EnqueueSendRetried(ctx context.Context, messageID string, processAt time.Time, retried int) error {
	payload, err := json.Marshal(SendPayload{MessageID: messageID, Retried: retried})
	if err != nil {
		return fmt.Errorf("encode send payload: %w", err)
	}
	return c.enqueue(ctx, asynq.NewTask(TypeSend, payload), messageID, processAt)
}

// EnqueueSendBatch schedules the send task of a batch of messages, to run
// now; its task id is batchID (the messages' store batch id, which never
// equals a message id). Like EnqueueSend it is
// idempotent: while the task exists, enqueueing it again does nothing.
func (c *Client) EnqueueSendBatch(ctx context.Context, batchID string, messageIDs []string) error {
	payload, err := json.Marshal(SendBatchPayload{MessageIDs: messageIDs})
	if err != nil {
		return fmt.Errorf("encode send batch payload: %w", err)
	}
	return c.enqueue(ctx, asynq.NewTask(TypeSendBatch, payload), batchID, time.Time{})
}

// enqueue adds task under id, at processAt when it is not zero; a task
// that already has the id is not an error.
func (c *Client) enqueue(ctx context.Context, task *asynq.Task, id string, processAt time.Time) error {
	opts := []asynq.Option{
		asynq.TaskID(id),
		asynq.Queue(QueueSend),
		asynq.MaxRetry(c.cfg.MaxRetry),
		asynq.Timeout(c.cfg.Timeout),
	}
	if !processAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(processAt))
	}
	_, err := c.ac.EnqueueContext(ctx, task, opts...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s %s: %w", task.Type(), id, err)
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
	// asynq refuses to delete a running task with an error of its internal
	// package (code FAILED_PRECONDITION) and exports no type or sentinel
	// for it, so the task's state tells that case from a real failure.
	if ti, ierr := c.in.GetTaskInfo(QueueSend, messageID); ierr == nil && ti.State == asynq.TaskStateActive {
		return nil
	}
	return fmt.Errorf("delete send task %s: %w", messageID, err)
}

// ParseSendBatchPayload decodes a TypeSendBatch task's payload.
func ParseSendBatchPayload(b []byte) (SendBatchPayload, error) {
	var p SendBatchPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode send batch payload: %w", err)
	}
	if len(p.MessageIDs) == 0 {
		return p, errors.New("decode send batch payload: no message_ids")
	}
	return p, nil
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
