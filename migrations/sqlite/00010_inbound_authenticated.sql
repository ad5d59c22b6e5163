-- inbound.authenticated is true when a valid VERP token named the
-- recipient: only such mail changes a recipient's status, suppresses an
-- address or counts a soft bounce; mail matched by its headers alone
-- (X-Mailgate-ID, Message-ID, In-Reply-To, References) is recorded with
-- false.
-- Rows written before this column are set from what was checked then: the
-- poller has always tied a report that carries a VERP token by that token
-- alone (HMAC-checked, else unmatched), so a matched row whose stored
-- report has a token (summary refs.verp_token) was matched by a valid
-- token and is true; every other row was unmatched or matched by headers
-- and is false. The summary is compact JSON and the key is found as text,
-- so that no row's summary has to parse: inside a JSON string a quote is
-- escaped, so the pattern meets only the key itself.

-- +goose Up
ALTER TABLE inbound ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0;
UPDATE inbound SET authenticated = 1 WHERE matched = 1 AND summary LIKE '%"verp\_token":"_%' ESCAPE '\'
    AND summary NOT LIKE '%"verp\_token":""%' ESCAPE '\';

-- +goose Down
ALTER TABLE inbound DROP COLUMN authenticated;
