-- Fits, their coefficients and allocations: append-only, versioned per family and law.
-- A refit adds a new version and never edits an old one; held and failed fits are kept too.
CREATE TABLE fits (
    fit_id               VARCHAR PRIMARY KEY,
    family               VARCHAR NOT NULL,
    law                  VARCHAR NOT NULL,
    version              INTEGER NOT NULL,
    data_version         VARCHAR NOT NULL,
    code_version         VARCHAR NOT NULL,
    fitted_at            TIMESTAMPTZ NOT NULL,
    n_runs               INTEGER NOT NULL,
    run_ids              VARCHAR[] NOT NULL,
    objective            DOUBLE,
    rmse_log             DOUBLE,
    extrapolation_error  DOUBLE,
    converged            BOOLEAN,
    bootstrap_resamples  INTEGER,
    status               VARCHAR NOT NULL CHECK (status IN ('published', 'held', 'failed')),
    reason               VARCHAR,
    checks               JSON,
    diagnostics          JSON,
    options              JSON,
    UNIQUE (family, law, version)
);

CREATE TABLE coefficients (
    fit_id   VARCHAR NOT NULL,
    family   VARCHAR NOT NULL,
    law      VARCHAR NOT NULL,
    version  INTEGER NOT NULL,
    name     VARCHAR NOT NULL,
    value    DOUBLE,
    ci_lo    DOUBLE,
    ci_hi    DOUBLE
);

CREATE TABLE allocations (
    fit_id               VARCHAR NOT NULL,
    family               VARCHAR NOT NULL,
    law                  VARCHAR NOT NULL,
    version              INTEGER NOT NULL,
    compute              DOUBLE NOT NULL,
    inference_tokens     DOUBLE NOT NULL DEFAULT 0,
    n_opt                DOUBLE,
    n_opt_lo             DOUBLE,
    n_opt_hi             DOUBLE,
    d_opt                DOUBLE,
    d_opt_lo             DOUBLE,
    d_opt_hi             DOUBLE,
    tokens_per_param     DOUBLE,
    tokens_per_param_lo  DOUBLE,
    tokens_per_param_hi  DOUBLE,
    predicted_loss       DOUBLE,
    predicted_loss_lo    DOUBLE,
    predicted_loss_hi    DOUBLE,
    target_loss          DOUBLE
);

-- Every refit request, including those that found nothing new to fit.
CREATE TABLE refits (
    checked_at    TIMESTAMPTZ NOT NULL,
    family        VARCHAR NOT NULL,
    law           VARCHAR NOT NULL,
    data_version  VARCHAR NOT NULL,
    code_version  VARCHAR NOT NULL,
    outcome       VARCHAR NOT NULL CHECK (outcome IN ('fitted', 'unchanged')),
    fit_id        VARCHAR
);

CREATE VIEW fits_published AS
SELECT * FROM fits
WHERE status = 'published'
QUALIFY row_number() OVER (PARTITION BY family, law ORDER BY version DESC) = 1;

CREATE VIEW coefficients_latest AS
SELECT f.family, f.law, f.version, f.fitted_at, f.data_version, f.code_version, f.n_runs, f.fit_id,
       c.name, c.value, c.ci_lo, c.ci_hi
FROM fits_published f JOIN coefficients c USING (fit_id);

CREATE VIEW allocations_latest AS
SELECT a.*, f.fitted_at, f.data_version
FROM fits_published f JOIN allocations a USING (fit_id);

-- "What did we believe at time ts": the newest fit published at or before ts, per family and law.
CREATE MACRO coefficients_as_of(ts) AS TABLE
WITH believed AS (
    SELECT * FROM fits
    WHERE status = 'published' AND fitted_at <= CAST(ts AS TIMESTAMPTZ)
    QUALIFY row_number() OVER (PARTITION BY family, law ORDER BY version DESC) = 1
)
SELECT f.family, f.law, f.version, f.fitted_at, f.data_version, f.code_version, f.n_runs, f.fit_id,
       c.name, c.value, c.ci_lo, c.ci_hi
FROM believed f JOIN coefficients c USING (fit_id);

-- The bootstrap resamples behind a fit's intervals, so an allocation at any budget gets its interval.
CREATE TABLE bootstrap_samples (
    fit_id       VARCHAR PRIMARY KEY,
    param_names  VARCHAR[] NOT NULL,
    samples      DOUBLE[][] NOT NULL
);
