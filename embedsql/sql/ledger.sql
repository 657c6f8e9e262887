-- The ledger: what embedsql has done in this database, so that any step can be resumed.
-- Loaded by embedsql.ledger on every connection; every statement must be idempotent.
CREATE SCHEMA IF NOT EXISTS embedsql;

CREATE TABLE IF NOT EXISTS embedsql.meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per `embedsql run`.
CREATE TABLE IF NOT EXISTS embedsql.jobs (
    job_id         VARCHAR PRIMARY KEY,   -- sortable: yyyymmdd-hhmmss-xxxx (UTC)
    fingerprint    VARCHAR NOT NULL,      -- hash of the job's definition: a re-run attaches to it
    status         VARCHAR NOT NULL,      -- prepared | complete | cancelled
    created_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ,
    query          VARCHAR NOT NULL,
    key_columns    VARCHAR[] NOT NULL,
    text_columns   VARCHAR[] NOT NULL,
    model          VARCHAR NOT NULL,
    dimensions     INTEGER NOT NULL,
    runner         VARCHAR NOT NULL,
    target         VARCHAR NOT NULL,      -- quoted [schema.]table
    mode           VARCHAR NOT NULL,      -- replace | upsert
    rows_table     VARCHAR NOT NULL,      -- snapshot of key -> text hash, taken at prepare time
    work_dir       VARCHAR NOT NULL,
    total_rows     BIGINT NOT NULL,
    distinct_texts BIGINT NOT NULL,
    cached_texts   BIGINT NOT NULL,       -- distinct texts the cache already held at prepare time
    tokens         BIGINT NOT NULL,       -- tokens of the texts to embed
    truncated      BIGINT NOT NULL DEFAULT 0, -- texts cut to the model's token limit
    base_url       VARCHAR                -- the API the job was sent to (--base-url); NULL: OpenAI's own
);

-- One row per batch input file of a job.
CREATE TABLE IF NOT EXISTS embedsql.shards (
    job_id   VARCHAR NOT NULL,
    shard    INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    path     VARCHAR NOT NULL,            -- relative to the job's work_dir
    lines    BIGINT NOT NULL,
    bytes    BIGINT NOT NULL,
    tokens   BIGINT NOT NULL,
    sha256   VARCHAR NOT NULL,
    status   VARCHAR NOT NULL,            -- embedsql.ledger.ShardStatus
    embedded BIGINT,                      -- lines that came back with a vector
    failed   BIGINT,                      -- lines that came back with an error
    -- Remote state, for runners that send the shard somewhere (the Batch API).
    input_file_id    VARCHAR,
    batch_id         VARCHAR,
    batch_status     VARCHAR,             -- the batch's own status, as last seen
    submissions      INTEGER NOT NULL DEFAULT 0,  -- batches created for this shard so far
    output_file_id   VARCHAR,
    error_file_id    VARCHAR,
    remote_completed BIGINT,              -- request_counts as last seen
    remote_failed    BIGINT,
    message          VARCHAR,             -- why the batch failed, as the server said
    billed_tokens    BIGINT,              -- prompt tokens billed for its lines (their usage), once loaded
    PRIMARY KEY (job_id, shard)
);

-- Lines that came back without a vector, one row per custom_id and attempt.
CREATE TABLE IF NOT EXISTS embedsql.errors (
    job_id    VARCHAR NOT NULL,
    shard     INTEGER NOT NULL,
    attempt   INTEGER NOT NULL,
    custom_id VARCHAR NOT NULL,
    status    INTEGER,                    -- HTTP status of the line, NULL for non-HTTP failures
    code      VARCHAR,
    message   VARCHAR,
    final     BOOLEAN NOT NULL            -- false: sent again in a later attempt
);

-- One cache table per (model, dimensions): text hash -> vector.
CREATE TABLE IF NOT EXISTS embedsql.caches (
    model      VARCHAR NOT NULL,
    dimensions INTEGER NOT NULL,
    table_name VARCHAR NOT NULL UNIQUE,
    PRIMARY KEY (model, dimensions)
);

-- The tables embedsql has written, with the model their vectors come from.
CREATE TABLE IF NOT EXISTS embedsql.targets (
    table_name  VARCHAR PRIMARY KEY,      -- quoted [schema.]table
    model       VARCHAR NOT NULL,
    dimensions  INTEGER NOT NULL,
    key_columns VARCHAR[] NOT NULL,
    key_types   VARCHAR[] NOT NULL,
    job_id      VARCHAR NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- The maps `embedsql map` has written: a table's vectors laid out in 2-D, clustered and labelled.
CREATE TABLE IF NOT EXISTS embedsql.maps (
    table_name   VARCHAR PRIMARY KEY,     -- quoted [schema.]table of the map
    source_table VARCHAR NOT NULL,        -- quoted [schema.]table of the vectors it lays out
    job_id       VARCHAR NOT NULL,        -- the job that wrote the source's vectors
    fingerprint  VARCHAR NOT NULL,        -- the source's keys and vectors, the sample, seed and method
    key_columns  VARCHAR[] NOT NULL,
    rows         BIGINT NOT NULL,         -- rows of the map
    points       BIGINT NOT NULL,         -- distinct vectors laid out
    sample       BIGINT,                  -- --sample (NULL: every row)
    labels_from  VARCHAR,                 -- the query whose columns labelled the clusters
    updated_at   TIMESTAMPTZ NOT NULL
);
