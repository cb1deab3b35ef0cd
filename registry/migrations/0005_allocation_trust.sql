-- Issue 9: an allocation carries its own verdict, and the profiles behind it are kept.
-- fits.status / fits.reason stay the LOSS LAW's verdict ('published', 'held', 'failed'); the
-- allocation at each budget gets a status of its own. Plain columns, tables and views only (no keys,
-- checks, sequences or indexes) so the same SQL serves DuckLake.

-- status: 'trusted' | 'extrapolated' | 'unidentified' | 'approaches_disagree' (laws/trust.py says
-- which applies); reason: what failed, with the figures and what to do, NULL when trusted (the
-- figures behind a trusted row are in fit_profiles and the fit's diagnostics). Rows stored before
-- this migration have NULL for both: no verdict stands behind them. An inference-aware row carries
-- the verdict of the training budget whose loss it targets.
ALTER TABLE allocations ADD COLUMN status VARCHAR;
ALTER TABLE allocations ADD COLUMN reason VARCHAR;

-- The profiles of a fit's objective (laws/profiles.py), long: one row per grid point and budget.
-- parameter 'E' (the irreducible loss) or 'a' (the allocation exponent beta / (alpha + beta));
-- value the profiled value, objective the fit's objective with it held there, relative_excess
-- objective / best - 1, tokens_per_param the compute-optimal tokens per parameter at compute.
CREATE TABLE fit_profiles (
    fit_id            VARCHAR NOT NULL,
    parameter         VARCHAR NOT NULL,
    value             DOUBLE NOT NULL,
    objective         DOUBLE,
    relative_excess   DOUBLE,
    compute           DOUBLE NOT NULL,
    tokens_per_param  DOUBLE
);

-- The latest published allocation table per family and law, with each row's status and reason
-- (recreated: the view's columns were fixed when it was made).
DROP VIEW allocations_latest;
CREATE VIEW allocations_latest AS
SELECT a.*, f.fitted_at, f.data_version
FROM fits_published f JOIN allocations a USING (fit_id);

-- Both verdicts of every fit side by side: the loss law's (fit_status, fit_reason) and, per budget
-- of its training-compute allocation, the allocation's (allocation_status, allocation_reason). A fit
-- with no allocation rows (held, failed, or a law without an allocation rule) has one row with
-- compute and the allocation columns NULL: read fit_status and fit_reason. Newest fit per family and
-- law: filter with QUALIFY row_number() OVER (PARTITION BY family, law ORDER BY version DESC) = 1.
CREATE VIEW fit_verdicts AS
SELECT f.fit_id, f.family, f.law, f.version, f.fitted_at, f.status AS fit_status, f.reason AS fit_reason,
       a.compute, a.tokens_per_param, a.status AS allocation_status, a.reason AS allocation_reason
FROM fits f
LEFT JOIN allocations a ON a.fit_id = f.fit_id AND a.inference_tokens = 0;
