-- Orders: one row per order_id; the first file that names an order wins.
CREATE TABLE orders (
    order_id    bigint PRIMARY KEY CHECK (order_id > 0),
    customer_id bigint NOT NULL CHECK (customer_id > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id, order_id);

-- Barcodes: one row per barcode (its first occurrence wins). order_id is NULL
-- while the barcode is unsold. No foreign key on purpose: a barcodes file may
-- arrive before the orders file that its order ids refer to. Barcodes compare
-- byte-wise (COLLATE "C"): they are codes, not words, and byte comparison
-- keeps the primary key fast to build and probe.
CREATE TABLE barcodes (
    barcode    text COLLATE "C" PRIMARY KEY CHECK (barcode <> ''),
    order_id   bigint CHECK (order_id > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX barcodes_order_id_idx ON barcodes (order_id);
