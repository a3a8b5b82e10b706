-- The ledger by object key, newest first: the dashboard follows the file it
-- uploaded (GET /ingestions?key=...).
CREATE INDEX ingestions_key_id_idx ON ingestions (key, id);
