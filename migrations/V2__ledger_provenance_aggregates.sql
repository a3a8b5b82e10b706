-- The ingestion ledger: one row per object version ingested (or rejected).
-- (bucket, key, etag, version_id) is the idempotency key: a redelivered
-- object finds its row and changes nothing.
CREATE TABLE ingestions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket        text NOT NULL,
    key           text NOT NULL,
    etag          text NOT NULL DEFAULT '',
    version_id    text NOT NULL DEFAULT '',
    -- 'loading' inside the load transaction, then 'loaded' or 'rejected'
    -- (the file as a whole could not be read); 'failed' when the last attempt
    -- hit a transient error and will be retried.
    status        text NOT NULL CHECK (status IN ('loading', 'loaded', 'rejected', 'failed')),
    kind          text CHECK (kind IN ('orders', 'barcodes')),
    rows_read     bigint NOT NULL DEFAULT 0,
    accepted      bigint NOT NULL DEFAULT 0,
    rejected      bigint NOT NULL DEFAULT 0,
    duplicates    bigint NOT NULL DEFAULT 0,
    warnings      bigint NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 1,
    report_key    text,
    rejects_key   text,
    error         text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    duration_ms   bigint,
    UNIQUE (bucket, key, etag, version_id)
);
CREATE INDEX ingestions_status_id_idx ON ingestions (status, id);

-- Provenance: every stored row remembers the ingestion and line it came from.
-- For barcodes it is also their order within an order (arrival order).
-- No foreign key on purpose: rows and their ledger row are written in the same
-- transaction, and a per-row FK check would slow bulk loads noticeably.
ALTER TABLE orders
    ADD COLUMN ingestion_id bigint,
    ADD COLUMN source_line bigint;
ALTER TABLE barcodes
    ADD COLUMN ingestion_id bigint,
    ADD COLUMN source_line bigint;

-- Aggregates kept current in the load transaction, so that no request has to
-- scan the barcode table. Tickets count barcodes of known orders only.
CREATE TABLE customer_tickets (
    customer_id bigint PRIMARY KEY,
    tickets     bigint NOT NULL CHECK (tickets >= 0)
);
CREATE INDEX customer_tickets_rank_idx ON customer_tickets (tickets DESC, customer_id);

-- Single-row counters; data_version changes with every committed change.
CREATE TABLE pipeline_stats (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    orders           bigint NOT NULL DEFAULT 0,
    barcodes         bigint NOT NULL DEFAULT 0,
    unused_barcodes  bigint NOT NULL DEFAULT 0,
    rejected_rows    bigint NOT NULL DEFAULT 0,
    data_version     bigint NOT NULL DEFAULT 0,
    -- Changes only when processed_orders.csv would change (tickets moved).
    output_version   bigint NOT NULL DEFAULT 0
);

-- Which output_version each published processed_orders.csv shows, per bucket
-- (or local output directory), so a stale file is republished.
CREATE TABLE published_outputs (
    destination  text PRIMARY KEY,
    data_version bigint NOT NULL
);
INSERT INTO pipeline_stats (orders, barcodes, unused_barcodes)
SELECT (SELECT count(*) FROM orders),
       (SELECT count(*) FROM barcodes),
       (SELECT count(*) FROM barcodes WHERE order_id IS NULL);
INSERT INTO customer_tickets (customer_id, tickets)
SELECT o.customer_id, count(*)
FROM barcodes b JOIN orders o ON o.order_id = b.order_id
GROUP BY o.customer_id;
