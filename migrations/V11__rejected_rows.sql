-- Every row a load rejected (invalid rows, later copies of a barcode, orders
-- claimed by another customer), kept for the Problems view across all files:
-- what was wrong and where, and for a copy where the winner is. The ignored
-- repeats and the warnings are not kept: the warnings' live state is a query
-- (orders without barcodes, barcodes waiting for their order).
CREATE TABLE rejected_rows (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ingestion_id bigint NOT NULL REFERENCES ingestions (id),
    line         bigint NOT NULL,
    -- A problem code (domain::outcome::ProblemCode) of severity rejected.
    kind         text NOT NULL,
    field        text,
    value        text,
    order_id     bigint,
    other_line   bigint,
    other_id     bigint,
    other_file   text,
    detail       text
);
CREATE INDEX rejected_rows_kind_id_idx ON rejected_rows (kind, id);

GRANT SELECT, INSERT ON rejected_rows TO order_pipeline_ingest;
GRANT SELECT ON rejected_rows TO order_pipeline_analytics;
