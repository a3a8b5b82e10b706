-- Order ids from 9000000000000000000 up belong to sales (POST /orders, the
-- sale_order_ids sequence of V3); ingest now rejects file rows naming them.
-- A database may hold such rows from before: the sequence moves past the
-- highest of them (an order from a file, or a barcode a file assigned), so
-- no sale ever draws an id a file used. Idempotent.
SELECT setval('sale_order_ids', taken)
FROM (SELECT GREATEST(
          (SELECT max(order_id) FROM orders
           WHERE order_id >= 9000000000000000000 AND ingestion_id IS NOT NULL),
          (SELECT max(order_id) FROM barcodes
           WHERE order_id >= 9000000000000000000 AND sale_id IS NULL)) AS taken) t
WHERE taken IS NOT NULL
  AND taken >= (SELECT last_value FROM sale_order_ids);
