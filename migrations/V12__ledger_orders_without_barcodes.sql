-- Orders without barcodes are a figure of their own, not warnings: an
-- orders file loaded before its barcodes (the usual order) made every order
-- a warning.
ALTER TABLE ingestions ADD COLUMN orders_without_barcodes bigint NOT NULL DEFAULT 0;
