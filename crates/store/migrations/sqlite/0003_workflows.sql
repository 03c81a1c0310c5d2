-- Workflow definitions: content-addressed blobs (sha256 of the exact text) and versioned
-- workflows whose versions point at the definition and compiled IR blobs.
CREATE TABLE blobs (
    hash       TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE workflows (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL UNIQUE,
    latest_version INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE workflow_versions (
    workflow_id     TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version         INTEGER NOT NULL,
    definition_hash TEXT NOT NULL REFERENCES blobs (hash),
    ir_hash         TEXT NOT NULL REFERENCES blobs (hash),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);
