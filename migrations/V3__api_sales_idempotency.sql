-- Ticket sales made through the HTTP API (POST /orders).
--
-- Order ids for sales come from their own range, 9e18 and up, far above any
-- id a shop system writes into orders.csv, so a sale and a file never pick
-- the same id by accident. Should a file ever name an order in that range,
-- the usual rule applies: the order stored first wins and a conflicting file
-- row is rejected; a sale whose drawn id is already taken draws the next one.
CREATE SEQUENCE sale_order_ids
    AS bigint
    MINVALUE 9000000000000000000
    START WITH 9000000000000000000
    NO CYCLE;

-- One row per sale. idempotency_key (the client's Idempotency-Key header) is
-- unique: a retried POST finds the first sale and gets its answer back;
-- fingerprint (a hash of the request body) tells a retry from a different
-- request that reuses the key.
CREATE TABLE sales (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id        bigint NOT NULL UNIQUE,
    customer_id     bigint NOT NULL CHECK (customer_id > 0),
    tickets         integer NOT NULL CHECK (tickets > 0),
    idempotency_key text UNIQUE,
    fingerprint     text NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Provenance of sold barcodes: the sale that sold them (NULL for barcodes
-- assigned by a file). ingestion_id/source_line keep saying which file the
-- barcode itself came from. Nullable without default: no table rewrite.
ALTER TABLE barcodes ADD COLUMN sale_id bigint;
