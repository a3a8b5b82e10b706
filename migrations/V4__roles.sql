-- Least privilege: one database role per function. The migrations run as
-- the schema owner (locally postgres; in AWS the master user, through the
-- migrate function), which keeps every table; the functions connect as
-- login users that are members of these NOLOGIN group roles, and may do
-- only what their code does (see shared/src/roles.rs for who logs in as
-- what, and shared/tests/database_roles.rs for the checks):
--   order_pipeline_ingest     loads files: writes orders, barcodes, the
--                             ledger, the aggregates and the publish state,
--                             uses temporary staging tables, and drops and
--                             rebuilds the bulk-load indexes only through the
--                             owner's functions below
--   order_pipeline_orders     reads, and sells: new orders, sales, sold
--                             barcodes, the aggregates a sale moves
--   order_pipeline_analytics  reads, and records what it published
-- No role but the owner may create, alter, drop or truncate anything.
--
-- Roles are cluster-wide, and this runs once per database (every test
-- creates a database and migrates it, many at once): a role another
-- database created first, or is creating right now (unique_violation), is
-- fine. Passwords never appear here: login users are made by the migrate
-- function (AWS, from each function's secret) or scripts/local.sh.
DO $$
DECLARE
    group_role text;
BEGIN
    FOREACH group_role IN ARRAY ARRAY['order_pipeline_ingest', 'order_pipeline_orders', 'order_pipeline_analytics'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', group_role);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END $$;

-- Nobody creates objects in the schema but its owner (PostgreSQL 15 already
-- says so; older servers and upgraded clusters do not), and only ingest
-- creates temporary tables (its staging).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO order_pipeline_ingest, order_pipeline_orders, order_pipeline_analytics;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO order_pipeline_ingest, order_pipeline_orders, order_pipeline_analytics',
                   current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO order_pipeline_ingest', current_database());
END $$;

-- Bulk loads (a first load into an empty table, a load that doubles one)
-- drop a table's indexes and build them once afterwards, inside the load
-- transaction. Index DDL needs the table's owner, and ownership would also
-- let ingest drop or truncate the table; so the owner runs exactly these
-- statements for it, nothing else (SECURITY DEFINER, fixed search_path,
-- only the two tables). They run in the caller's transaction: a failed load
-- rolls the dropped indexes back with everything else.
CREATE FUNCTION drop_load_indexes(load_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    CASE load_table
        WHEN 'orders' THEN
            ALTER TABLE public.orders DROP CONSTRAINT orders_pkey;
            DROP INDEX public.orders_customer_id_idx;
        WHEN 'barcodes' THEN
            ALTER TABLE public.barcodes DROP CONSTRAINT barcodes_pkey;
            DROP INDEX public.barcodes_order_id_idx;
        ELSE
            RAISE EXCEPTION 'drop_load_indexes: % has no load indexes; use orders or barcodes', load_table;
    END CASE;
END $$;

-- The same definitions as V1's: a migration that changes those indexes
-- changes these too (database_roles.rs checks that they match).
CREATE FUNCTION build_load_indexes(load_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    CASE load_table
        WHEN 'orders' THEN
            ALTER TABLE public.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (order_id);
            CREATE INDEX orders_customer_id_idx ON public.orders (customer_id, order_id);
        WHEN 'barcodes' THEN
            ALTER TABLE public.barcodes ADD CONSTRAINT barcodes_pkey PRIMARY KEY (barcode);
            CREATE INDEX barcodes_order_id_idx ON public.barcodes (order_id);
        ELSE
            RAISE EXCEPTION 'build_load_indexes: % has no load indexes; use orders or barcodes', load_table;
    END CASE;
END $$;

REVOKE ALL ON FUNCTION drop_load_indexes(text), build_load_indexes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drop_load_indexes(text), build_load_indexes(text) TO order_pipeline_ingest;

-- Table privileges, exactly what each function's SQL does. Each migration
-- that adds a table or sequence grants it here-style, explicitly (no
-- ALTER DEFAULT PRIVILEGES: a new table is not every role's business), and
-- database_roles.rs fails on a table whose privileges nobody decided.
GRANT SELECT, INSERT ON orders TO order_pipeline_ingest;
GRANT SELECT, INSERT, UPDATE ON barcodes, ingestions, customer_tickets, published_outputs TO order_pipeline_ingest;
GRANT SELECT, UPDATE ON pipeline_stats TO order_pipeline_ingest;

-- A sale: a new order (id from sale_order_ids), its sales row and stored
-- answer, its barcodes marked sold (order and sale only: a barcode's file
-- provenance is not the API's to change), the aggregates. Reads: orders,
-- barcodes, ledger keys for provenance, the aggregates.
GRANT SELECT, INSERT ON orders TO order_pipeline_orders;
GRANT SELECT, UPDATE (order_id, sale_id) ON barcodes TO order_pipeline_orders;
GRANT SELECT, INSERT, UPDATE (response) ON sales TO order_pipeline_orders;
GRANT SELECT, INSERT, UPDATE (tickets) ON customer_tickets TO order_pipeline_orders;
GRANT SELECT, UPDATE ON pipeline_stats TO order_pipeline_orders;
GRANT SELECT ON ingestions TO order_pipeline_orders;
GRANT USAGE ON SEQUENCE sale_order_ids TO order_pipeline_orders;

-- Analytics reads the aggregates, the ledger, the unused barcodes and (to
-- republish processed_orders.csv) orders and barcodes; it records which
-- version it published.
GRANT SELECT ON orders, barcodes, ingestions, customer_tickets, pipeline_stats TO order_pipeline_analytics;
GRANT SELECT, INSERT, UPDATE ON published_outputs TO order_pipeline_analytics;
