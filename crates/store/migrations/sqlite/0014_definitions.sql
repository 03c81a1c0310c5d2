-- Named, versioned definitions of the control plane: agents (an LLM endpoint, a system prompt,
-- tools) and skills (a sandboxed Python script with input and output JSON Schemas). Each
-- version's body is stored as canonical JSON text and never changes; a new version gets the
-- next number. A delete is soft (deleted_at): version numbers are never reused, and a job or run
-- that resolved a version has already recorded what it resolved.
CREATE TABLE definitions (
    kind           TEXT NOT NULL CHECK (kind IN ('agent', 'skill')),
    name           TEXT NOT NULL,
    latest_version INTEGER NOT NULL,
    -- The API key that created it (NULL: the anonymous admin of a server without auth).
    owner_key_id   TEXT,
    owner_name     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    deleted_at     TEXT,
    PRIMARY KEY (kind, name)
);

CREATE TABLE definition_versions (
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    -- The API key that wrote this version, and its name.
    by_key_id   TEXT,
    by_name     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (kind, name, version),
    FOREIGN KEY (kind, name) REFERENCES definitions (kind, name)
);
