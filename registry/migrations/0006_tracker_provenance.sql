-- Runs imported from an experiment tracker (an MLflow tracking server) trace back to the tracker.
-- An import is a row in sources like a file: its tracker, tracking URI (credentials removed) and
-- experiment, and the time range of the runs it read; tracker_runs holds one row per tracker run the
-- import saw: the tracker's run id and status, and either its row in the import (join runs or rejects
-- on source_id and row_number) or why it was skipped (still running, failed, killed, deleted).
-- Plain columns and tables only (no keys, checks or sequences), so the same SQL serves DuckLake.
ALTER TABLE sources ADD COLUMN tracker VARCHAR;
ALTER TABLE sources ADD COLUMN tracking_uri VARCHAR;
ALTER TABLE sources ADD COLUMN experiment VARCHAR;
ALTER TABLE sources ADD COLUMN experiment_id VARCHAR;
ALTER TABLE sources ADD COLUMN runs_started_from TIMESTAMPTZ;
ALTER TABLE sources ADD COLUMN runs_ended_to TIMESTAMPTZ;

CREATE TABLE tracker_runs (
    source_id         BIGINT NOT NULL,
    tracker           VARCHAR NOT NULL,
    tracking_uri      VARCHAR NOT NULL,
    experiment_id     VARCHAR NOT NULL,
    tracker_run_id    VARCHAR NOT NULL,
    tracker_run_name  VARCHAR,
    status            VARCHAR NOT NULL,
    deleted           BOOLEAN NOT NULL,
    started_at        TIMESTAMPTZ,
    ended_at          TIMESTAMPTZ,
    row_number        BIGINT,
    points            BIGINT,
    last_step         BIGINT,
    skipped_reason    VARCHAR
);
