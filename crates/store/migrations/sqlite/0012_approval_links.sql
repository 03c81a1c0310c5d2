-- Approval links sent to chat (issue 17). `approval_link_keys` holds the one HMAC-SHA256 key
-- every process of this store signs and checks links with (32 random bytes, hex), made by the
-- first process that needs it; it lives in the store, not in a data dir, because the processes of
-- a cluster share the store and nothing else. `approval_link_uses` records each link's nonce
-- when the link decides, so a link decides once: the primary key makes the second use fail.
CREATE TABLE approval_link_keys (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE approval_link_uses (
    nonce       TEXT PRIMARY KEY NOT NULL,
    approval_id TEXT NOT NULL REFERENCES workflow_approvals (id) ON DELETE CASCADE,
    used_at     TEXT NOT NULL
);
