-- A provider event is recorded once per receiving project: the inbound
-- row of a provider notification is keyed "PROJECT/EVENT_ID" (package
-- inbound), so that one project's endpoint cannot pre-empt another's event
-- ids. Rows recorded under the bare event id are given their project's
-- prefix, so that a provider's retry of an event taken before the upgrade
-- is still recognised as a duplicate. Rows that matched no project had no
-- effect and keep their key.

-- +goose Up
UPDATE inbound
SET mailbox_message_id = project_id || '/' || mailbox_message_id
WHERE mailbox LIKE 'feedback/%'
  AND project_id IS NOT NULL
  AND substr(mailbox_message_id, 1, length(project_id) + 1) <> project_id || '/';

-- +goose Down
UPDATE inbound
SET mailbox_message_id = substr(mailbox_message_id, length(project_id) + 2)
WHERE mailbox LIKE 'feedback/%'
  AND project_id IS NOT NULL
  AND substr(mailbox_message_id, 1, length(project_id) + 1) = project_id || '/';
