-- Barcodes sold to orders no file has brought yet, kept by the loads (a
-- barcodes load adds its orphans, an orders load removes the barcodes of
-- the orders it brings), so the Problems view pages through them without
-- probing every barcode: a sold barcode never moves, so one waits until its
-- order arrives.
CREATE TABLE waiting_barcodes (
    barcode  text COLLATE "C" PRIMARY KEY,
    order_id bigint NOT NULL
);
CREATE INDEX waiting_barcodes_order_id_idx ON waiting_barcodes (order_id);

INSERT INTO waiting_barcodes (barcode, order_id)
SELECT b.barcode, b.order_id FROM barcodes b
WHERE b.order_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = b.order_id);

GRANT SELECT, INSERT, DELETE ON waiting_barcodes TO order_pipeline_ingest;
GRANT SELECT ON waiting_barcodes TO order_pipeline_analytics;
