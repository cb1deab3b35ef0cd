-- Family settings (declared in TOML, versioned here) and runs that appear in more than one family.
-- Plain tables and views only (no keys, indexes or sequences) so the same SQL serves DuckLake.

-- Every distinct version of a family's settings, append-only: a row is added when the version
-- (a hash of the canonical settings JSON) differs from the family's latest row.
CREATE TABLE family_settings (
    family     VARCHAR NOT NULL,
    version    VARCHAR NOT NULL,
    settings   JSON NOT NULL,
    source     VARCHAR,
    loaded_at  TIMESTAMPTZ NOT NULL
);

CREATE VIEW family_settings_latest AS
SELECT * FROM family_settings
QUALIFY row_number() OVER (PARTITION BY family ORDER BY loaded_at DESC) = 1;

-- How close two runs of different families must be to count as the same trained model; the
-- latest row applies. N within 1%. D within 15%: IsoFLOP compilations snap compute to the nominal
-- budget and recompute D = C / 6N, which moves D by up to 11% from the run's own (Chinchilla's
-- Figure 4 points in isoflop-epochai-chinchilla). Loss within 0.02: re-digitised figures differ
-- by about 0.01-0.02.
CREATE TABLE overlap_tolerances (
    params_rtol  DOUBLE NOT NULL,
    tokens_rtol  DOUBLE NOT NULL,
    loss_atol    DOUBLE NOT NULL,
    set_at       TIMESTAMPTZ NOT NULL
);
INSERT INTO overlap_tolerances VALUES (0.01, 0.15, 0.02, now());

-- Pairs of runs in different families that look like one trained model: N and D within the
-- relative tolerances (max/min - 1) and the fitted loss within the absolute one. Each pair appears
-- in both orders, so "WHERE family_a = ?" finds all of a family's overlaps. declared_distinct marks
-- family pairs whose settings say they are different runs (a shared model grid trained on other
-- data can match by coincidence), with the settings' reason.
CREATE VIEW run_overlaps AS
WITH tolerance AS (
    SELECT params_rtol, tokens_rtol, loss_atol FROM overlap_tolerances
    QUALIFY row_number() OVER (ORDER BY set_at DESC) = 1
),
-- Runs bucketed on log N with buckets one tolerance wide: runs within the tolerance sit in the same
-- or a neighbouring bucket, so the join is a hash join rather than a comparison of every pair.
keyed AS (
    SELECT r.family, r.run_id, r.run_name, r.params, r.tokens, r.loss,
           floor(ln(r.params) / ln(1 + greatest(t.params_rtol, 1e-12)))::BIGINT AS bucket
    FROM runs r CROSS JOIN tolerance t
),
probes AS (
    SELECT *, unnest([bucket - 1, bucket, bucket + 1]) AS probe FROM keyed
),
declared AS (
    SELECT family, d.family AS other, d.reason
    FROM (
        SELECT family, unnest(from_json(settings -> 'distinct_from', '[{"family": "VARCHAR", "reason": "VARCHAR"}]')) AS d
        FROM family_settings_latest
    )
),
distinct_pairs AS (
    SELECT family_a, family_b, string_agg(DISTINCT reason, '; ' ORDER BY reason) AS reason
    FROM (
        SELECT family AS family_a, other AS family_b, reason FROM declared
        UNION ALL
        SELECT other AS family_a, family AS family_b, reason FROM declared
    )
    GROUP BY family_a, family_b
)
SELECT
    a.family AS family_a, a.run_id AS run_a, a.run_name AS run_name_a,
    b.family AS family_b, b.run_id AS run_b, b.run_name AS run_name_b,
    greatest(a.params / b.params, b.params / a.params) - 1 AS params_difference,
    greatest(a.tokens / b.tokens, b.tokens / a.tokens) - 1 AS tokens_difference,
    abs(a.loss - b.loss) AS loss_difference,
    d.family_a IS NOT NULL AS declared_distinct,
    d.reason AS distinct_reason
FROM probes a
JOIN keyed b ON b.bucket = a.probe AND b.family <> a.family
CROSS JOIN tolerance t
LEFT JOIN distinct_pairs d ON d.family_a = a.family AND d.family_b = b.family
WHERE a.params <= b.params * (1 + t.params_rtol) AND b.params <= a.params * (1 + t.params_rtol)
  AND a.tokens <= b.tokens * (1 + t.tokens_rtol) AND b.tokens <= a.tokens * (1 + t.tokens_rtol)
  AND abs(a.loss - b.loss) <= t.loss_atol;

-- Per ordered pair of families: how many of family_a's runs have a counterpart in family_b.
CREATE VIEW family_overlaps AS
SELECT o.family_a, o.family_b, count(DISTINCT o.run_a) AS n_shared, any_value(n.n_runs) AS n_runs,
       bool_or(o.declared_distinct) AS declared_distinct, any_value(o.distinct_reason) AS distinct_reason
FROM run_overlaps o
JOIN (SELECT family, count(*) AS n_runs FROM runs GROUP BY family) n ON n.family = o.family_a
GROUP BY o.family_a, o.family_b;
