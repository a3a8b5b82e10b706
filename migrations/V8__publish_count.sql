-- How many times each output was written: bursts of files should cost a
-- few publishes, not one per file, and operators and the benchmark read
-- the figure here.
ALTER TABLE published_outputs ADD COLUMN publishes bigint NOT NULL DEFAULT 0;
