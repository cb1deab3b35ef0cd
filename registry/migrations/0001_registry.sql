-- Sources, runs, per-step points and rejects: the validated registry of training runs.
-- No secondary indexes: DuckDB's zone maps serve the scans these tables get, and an ART index
-- would make every million-row curve insert several times slower.
CREATE SEQUENCE IF NOT EXISTS source_id_seq START 1;

CREATE TABLE sources (
    source_id      BIGINT PRIMARY KEY,
    name           VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL CHECK (kind IN ('published', 'internal')),
    adapter        VARCHAR NOT NULL,
    citation       VARCHAR,
    original_path  VARCHAR NOT NULL,
    archive_path   VARCHAR,
    sha256         VARCHAR NOT NULL,
    ingested_at    TIMESTAMPTZ NOT NULL,
    rows_read      BIGINT NOT NULL DEFAULT 0,
    rows_accepted  BIGINT NOT NULL DEFAULT 0,
    rows_rejected  BIGINT NOT NULL DEFAULT 0,
    status         VARCHAR NOT NULL CHECK (status IN ('ingested', 'failed')),
    error          VARCHAR
);

CREATE TABLE runs (
    run_id                VARCHAR PRIMARY KEY,
    family                VARCHAR NOT NULL,
    source_id             BIGINT NOT NULL,
    run_name              VARCHAR NOT NULL,
    params                DOUBLE NOT NULL,
    params_non_embedding  DOUBLE,
    tokens                DOUBLE NOT NULL,
    tokens_derived        BOOLEAN NOT NULL DEFAULT FALSE,
    unique_tokens         DOUBLE,
    flops                 DOUBLE NOT NULL,
    flops_derived         BOOLEAN NOT NULL,
    loss                  DOUBLE NOT NULL,
    loss_name             VARCHAR NOT NULL,
    final_step            BIGINT,
    flags                 VARCHAR[] NOT NULL DEFAULT [],
    tags                  JSON,
    row_number            BIGINT NOT NULL,
    ingested_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE run_points (
    run_id     VARCHAR NOT NULL,
    step       BIGINT,
    tokens     DOUBLE NOT NULL,
    loss_name  VARCHAR NOT NULL,
    loss       DOUBLE NOT NULL
);

CREATE TABLE rejects (
    source_id   BIGINT NOT NULL,
    member      VARCHAR,
    row_number  BIGINT NOT NULL,
    raw         JSON,
    reasons     VARCHAR[] NOT NULL
);
