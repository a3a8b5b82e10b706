-- Loads that build a table's indexes once instead of row by row (a first
-- load into an empty table, a load that at least doubles one) no longer drop
-- the live table's indexes: that held the table ACCESS EXCLUSIVE for the
-- whole load, and every API read of it waited and failed (issue 12). They
-- load a shadow copy instead, in the private schema pipeline_load, and swap
-- it in at the end of the load transaction: readers keep reading the
-- committed table meanwhile, and wait only for the swap (milliseconds).
--
-- The load puts pipeline_load first in its search_path (SET LOCAL), so its
-- SQL names the tables as always. As in V4, DDL needs the owner: these
-- SECURITY DEFINER functions run exactly it, for the two tables only, in
-- the caller's transaction (a failed or killed load leaves no shadow, and
-- the live table as it was). The caller holds the merge lock (db.rs), so no
-- one writes the live table between the copy and the swap.
CREATE SCHEMA pipeline_load;
REVOKE ALL ON SCHEMA pipeline_load FROM PUBLIC;
GRANT USAGE ON SCHEMA pipeline_load TO order_pipeline_ingest;

DROP FUNCTION drop_load_indexes(text);

-- The shadow: the live table's columns, defaults and checks (same names),
-- without indexes, holding a copy of its rows (none for a first load), with
-- the live table's privileges, so the load does there what it may do on the
-- live table, and after the swap every role has what it had.
CREATE FUNCTION begin_shadow_load(load_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    live regclass;
    granted record;
BEGIN
    IF load_table NOT IN ('orders', 'barcodes') THEN
        RAISE EXCEPTION 'begin_shadow_load: % has no shadow load; use orders or barcodes', load_table;
    END IF;
    live := format('public.%I', load_table)::regclass;
    EXECUTE format('CREATE TABLE pipeline_load.%I (LIKE %s INCLUDING ALL EXCLUDING INDEXES)', load_table, live);
    EXECUTE format('INSERT INTO pipeline_load.%I SELECT * FROM %s', load_table, live);
    FOR granted IN
        SELECT a.privilege_type, a.grantee, '' AS columns
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = live AND a.grantee <> c.relowner
        UNION ALL
        SELECT a.privilege_type, a.grantee, format('(%I)', att.attname)
        FROM pg_attribute att, aclexplode(att.attacl) a
        WHERE att.attrelid = live AND att.attacl IS NOT NULL
    LOOP
        EXECUTE format('GRANT %s %s ON pipeline_load.%I TO %s', granted.privilege_type, granted.columns, load_table,
                       CASE WHEN granted.grantee = 0 THEN 'PUBLIC' ELSE granted.grantee::regrole::text END);
    END LOOP;
END $$;

-- The same definitions as V1's, now built on the shadow: a migration that
-- changes those indexes changes these too (database_roles.rs checks that
-- they match once swapped in).
CREATE OR REPLACE FUNCTION build_load_indexes(load_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    CASE load_table
        WHEN 'orders' THEN
            ALTER TABLE pipeline_load.orders ADD CONSTRAINT orders_pkey PRIMARY KEY (order_id);
            CREATE INDEX orders_customer_id_idx ON pipeline_load.orders (customer_id, order_id);
        WHEN 'barcodes' THEN
            ALTER TABLE pipeline_load.barcodes ADD CONSTRAINT barcodes_pkey PRIMARY KEY (barcode);
            CREATE INDEX barcodes_order_id_idx ON pipeline_load.barcodes (order_id);
        ELSE
            RAISE EXCEPTION 'build_load_indexes: % has no load indexes; use orders or barcodes', load_table;
    END CASE;
END $$;

-- The swap: the live table goes, the shadow takes its place (same name,
-- index and constraint names, privileges). Readers hold ACCESS SHARE for as
-- long as their transaction runs, and a waiting ACCESS EXCLUSIVE request
-- queues every later reader behind it: so the swap waits 50 ms at a time
-- and steps aside between tries, for up to a minute (a long export), then
-- fails and the load is retried. Run last, just before COMMIT: the lock
-- lasts from here to the commit.
CREATE FUNCTION swap_in_shadow_load(load_table text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET lock_timeout = '50ms' AS $$
DECLARE
    tries integer := 0;
BEGIN
    IF load_table NOT IN ('orders', 'barcodes') THEN
        RAISE EXCEPTION 'swap_in_shadow_load: % has no shadow load; use orders or barcodes', load_table;
    END IF;
    LOOP
        BEGIN
            EXECUTE format('LOCK TABLE public.%I IN ACCESS EXCLUSIVE MODE', load_table);
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 600 THEN
                RAISE EXCEPTION 'swap_in_shadow_load: readers kept public.% in use for a minute; the load rolls back', load_table
                    USING ERRCODE = 'lock_not_available',
                          HINT = 'a retry of the load swaps once the long reader (an export?) has finished';
            END IF;
            PERFORM pg_sleep(0.05);
        END;
    END LOOP;
    EXECUTE format('DROP TABLE public.%I', load_table);
    EXECUTE format('ALTER TABLE pipeline_load.%I SET SCHEMA public', load_table);
END $$;

REVOKE ALL ON FUNCTION begin_shadow_load(text), swap_in_shadow_load(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION begin_shadow_load(text), swap_in_shadow_load(text) TO order_pipeline_ingest;
