-- Orders: one row per order_id; the first file that names an order wins.
CREATE TABLE orders (
    order_id    bigint PRIMARY KEY CHECK (order_id > 0),
    customer_id bigint NOT NULL CHECK (customer_id > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id, order_id);

-- Barcodes: one row per barcode (its first occurrence wins). order_id is NULL
-- while the barcode is unsold. No foreign key on purpose: a barcodes file may
-- arrive before the orders file that its order ids refer to.
CREATE TABLE barcodes (
    barcode    text PRIMARY KEY CHECK (barcode <> ''),
    order_id   bigint CHECK (order_id > 0),
    -- Arrival order, so an order lists its barcodes as they appeared in the file.
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX barcodes_order_id_idx ON barcodes (order_id, seq);
