-- processed_orders.csv as segments by order_id range, so a publish costs
-- what changed: each segment is an object of its own in the bucket, and the
-- published file is assembled from them on S3's side (UploadPartCopy).
CREATE TABLE export_segments (
    destination text NOT NULL,
    -- The segment holds the orders from here up to the next segment's first
    -- (the first segment starts at the smallest bigint and holds the header).
    first_order_id bigint NOT NULL,
    object_key text NOT NULL,
    -- The object's ETag when it was written: the file is assembled only
    -- from segments that still hold what was written.
    etag text,
    bytes bigint NOT NULL CHECK (bytes >= 0),
    orders bigint NOT NULL CHECK (orders >= 0),
    PRIMARY KEY (destination, first_order_id)
);

-- The orders whose line of processed_orders.csv a commit changed, with the
-- output version that commit gave (written under the merge lock, so the
-- versions are in commit order). A NULL order_id means the whole file (a
-- first barcodes load, or a load that touched most orders). A publisher
-- rewrites the segments these fall in, and deletes what every destination
-- has published.
CREATE TABLE export_changes (
    output_version bigint NOT NULL,
    order_id bigint
);
CREATE INDEX export_changes_by_version ON export_changes (output_version);

GRANT SELECT, INSERT, UPDATE, DELETE ON export_segments TO order_pipeline_ingest, order_pipeline_analytics;
GRANT SELECT, INSERT, DELETE ON export_changes TO order_pipeline_ingest, order_pipeline_analytics;
GRANT INSERT ON export_changes TO order_pipeline_orders;
