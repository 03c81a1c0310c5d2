-- Model-day simulation jobs. Money, prices and quantities are exact decimal TEXT (never REAL);
-- timestamps are UTC TEXT, dates 'YYYY-MM-DD'; JSON is TEXT.

CREATE TABLE jobs (
    id                 TEXT PRIMARY KEY NOT NULL,
    config             TEXT NOT NULL,
    config_hash        TEXT NOT NULL,
    currency           TEXT NOT NULL,
    currency_precision INTEGER NOT NULL,
    status             TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed')),
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    error              TEXT
);
CREATE INDEX jobs_config_hash ON jobs (config_hash);
CREATE INDEX jobs_status ON jobs (status);
-- At most one active job per configuration: re-triggering finds it instead of duplicating it.
CREATE UNIQUE INDEX jobs_active_config ON jobs (config_hash)
    WHERE status IN ('pending', 'running');

CREATE TABLE job_details (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    date            TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT,
    finished_at     TEXT,
    duration_ms     INTEGER,
    error           TEXT,
    steps           INTEGER,
    tool_errors     INTEGER,
    cash            TEXT,
    portfolio_value TEXT,
    PRIMARY KEY (job_id, model, date)
);
CREATE INDEX job_details_status ON job_details (job_id, status);
CREATE INDEX job_details_model_date ON job_details (model, date);

CREATE TABLE positions (
    job_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    date       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('buy', 'sell', 'hold')),
    symbol     TEXT,
    quantity   TEXT NOT NULL,
    price      TEXT NOT NULL,
    fee        TEXT NOT NULL,
    cash_after TEXT NOT NULL,
    PRIMARY KEY (job_id, model, date, seq),
    FOREIGN KEY (job_id, model, date)
        REFERENCES job_details (job_id, model, date) ON DELETE CASCADE
);

CREATE TABLE holdings (
    job_id   TEXT NOT NULL,
    model    TEXT NOT NULL,
    date     TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    symbol   TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price    TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (job_id, model, date, seq),
    UNIQUE (job_id, model, date, symbol),
    FOREIGN KEY (job_id, model, date)
        REFERENCES job_details (job_id, model, date) ON DELETE CASCADE
);

CREATE TABLE reasoning_logs (
    job_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    date       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    tool_calls TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (job_id, model, date, seq),
    FOREIGN KEY (job_id, model, date)
        REFERENCES job_details (job_id, model, date) ON DELETE CASCADE
);

CREATE TABLE tool_usage (
    job_id     TEXT NOT NULL,
    model      TEXT NOT NULL,
    date       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    tool_name  TEXT NOT NULL,
    args       TEXT NOT NULL,
    result     TEXT,
    latency_ms INTEGER NOT NULL,
    error      TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (job_id, model, date, seq),
    FOREIGN KEY (job_id, model, date)
        REFERENCES job_details (job_id, model, date) ON DELETE CASCADE
);

CREATE TABLE runs (
    run_id     TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    run_dir    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    summary    TEXT
);
CREATE INDEX runs_created_at ON runs (created_at);
