-- Issue 15: family groups, fitted jointly with shared parameters (registry/groups.py, registry/group_refit.py).
-- Plain tables and views only (no keys, checks, sequences or indexes) so the same SQL serves DuckLake.
-- A member's coefficients from its group's joint fit are ordinary rows of fits, coefficients and
-- allocations under the law '<law>+joint:<group>' (e.g. 'chinchilla+joint:gadre'), beside the
-- member's single-family fit; their diagnostics name the group and the shared parameters.

-- Every distinct version of a group's declared settings, append-only: a row is added when the
-- version (a hash of the canonical settings JSON: members, shared, law, objective) changes.
CREATE TABLE group_settings (
    group_name  VARCHAR NOT NULL,
    version     VARCHAR NOT NULL,
    settings    JSON NOT NULL,
    source      VARCHAR,
    loaded_at   TIMESTAMPTZ NOT NULL
);

CREATE VIEW group_settings_latest AS
SELECT * FROM group_settings
QUALIFY row_number() OVER (PARTITION BY group_name ORDER BY loaded_at DESC) = 1;

-- Did sharing help? Per group fit and member: the mean relative error of the predicted loss of the
-- member's runs above the compute cut-off (fitted on the runs below it) by the joint fit and by the
-- member's single fit. NULL errors: no run above the cut-off, or the runs below it could not be
-- fitted. worse: the group's joint fit extrapolates worse, over its members, than they do alone.
CREATE TABLE group_comparisons (
    group_name      VARCHAR NOT NULL,
    fitted_at       TIMESTAMPTZ NOT NULL,
    data_version    VARCHAR NOT NULL,
    code_version    VARCHAR NOT NULL,
    family          VARCHAR NOT NULL,
    joint_fit_id    VARCHAR,
    single_fit_id   VARCHAR,
    compute_cutoff  DOUBLE,
    n_held_out      INTEGER,
    joint_error     DOUBLE,
    single_error    DOUBLE,
    group_worse     BOOLEAN
);

-- The newest comparison of every group, one row per member.
CREATE VIEW group_comparisons_latest AS
SELECT * FROM group_comparisons
QUALIFY rank() OVER (PARTITION BY group_name ORDER BY fitted_at DESC) = 1;
