-- Provider feedback endpoints: per project and upstream provider (ses,
-- sendgrid, mailgun, postmark), how that provider's notifications are
-- verified. id is the random token in the receiving URL
-- (/v1/feedback/{provider}/{id}): it names the project, since the provider
-- cannot carry an API key. public holds what is not secret (the SNS topic
-- ARN, SendGrid's verification key, Postmark's basic-auth user name);
-- secret_sealed what is (Mailgun's signing key, Postmark's password),
-- sealed with the master key (package keyring), NULL when the provider
-- needs none. Times are Unix microseconds.

-- +goose Up
CREATE TABLE feedback_endpoints (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    provider      TEXT NOT NULL,
    public        TEXT NOT NULL DEFAULT '',
    secret_sealed BLOB,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (project_id, provider)
);

-- +goose Down
DROP TABLE feedback_endpoints;
