-- A source is its content read one way. The same content read with another mapping, family or
-- adapter is a new reading: it supersedes the earlier one, whose runs, run points and rejects are
-- removed (fits and planners never see them) while its sources row stays, pointing at the reading
-- that replaced it. Plain columns only, so the same SQL serves DuckLake.
ALTER TABLE sources ADD COLUMN reading_sha256 VARCHAR;
ALTER TABLE sources ADD COLUMN superseded_by BIGINT;

-- Run points name their source: an extra loss of a run can come from another file than the run.
ALTER TABLE run_points ADD COLUMN source_id BIGINT;
UPDATE run_points SET source_id = (SELECT r.source_id FROM runs r WHERE r.run_id = run_points.run_id);
