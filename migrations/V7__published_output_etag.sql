-- The ETag of the processed_orders.csv each destination was last given, so
-- a publisher sees a file deleted, replaced or lost with its bucket (a
-- LocalStack restart keeps PostgreSQL but not the bucket) and rewrites it,
-- even when no new data asks for it. NULL for rows written before: any
-- existing object then counts as the published one.
ALTER TABLE published_outputs ADD COLUMN etag text;
