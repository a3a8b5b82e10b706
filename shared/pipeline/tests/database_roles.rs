//! Least privilege in PostgreSQL (migrations/V4__roles.sql): each function's
//! role may do what its code does and nothing more. Real PostgreSQL; each
//! test connects as the roles' login users, as the functions do.

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::ingest::IngestStatus;
use order_pipeline::postgres::roles::DatabaseRole;
use order_pipeline::storage::ObjectRef;
use pipeline_test_support::{TestDatabase, TestPipeline};
use tokio_postgres::error::SqlState;

/// What no function's role may do to the schema. Every statement fails with
/// insufficient_privilege (42501), whatever the role.
const SCHEMA_CHANGES: &[&str] = &[
    "CREATE TABLE intruder (id int)",
    "CREATE VIEW intruder AS SELECT 1 AS one",
    "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE INDEX intruder_idx ON orders (created_at)",
    "ALTER TABLE orders ADD COLUMN intruder int",
    "ALTER TABLE barcodes DROP CONSTRAINT barcodes_pkey",
    "DROP INDEX orders_customer_id_idx",
    "DROP TABLE orders",
    "DROP TABLE ingestions",
    "DROP SEQUENCE sale_order_ids",
    "TRUNCATE orders",
    "TRUNCATE barcodes, sales, ingestions",
    "DELETE FROM orders",
    "DELETE FROM ingestions",
    "ALTER TABLE orders OWNER TO CURRENT_USER",
];

/// Runs `statement` and expects a permission error.
async fn assert_denied(client: &tokio_postgres::Client, role: DatabaseRole, statement: &str) {
    let error = client
        .batch_execute(statement)
        .await
        .expect_err(&format!("{role:?} may run {statement}"));
    assert_eq!(
        error.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{role:?}: {statement}: {error:?}"
    );
}

#[tokio::test]
async fn no_function_role_can_create_alter_drop_or_truncate() {
    let db = TestDatabase::create().await;
    for role in DatabaseRole::ALL {
        let pool = db.pool_as(role).await;
        let client = pool.get().await.expect("connect as the role");
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(user, format!("{}_test", role.group()));
        for statement in SCHEMA_CHANGES {
            assert_denied(&client, role, statement).await;
        }
        if role != DatabaseRole::Ingest {
            // Only ingest stages in temporary tables and loads through
            // shadow tables.
            assert_denied(&client, role, "CREATE TEMP TABLE intruder (id int)").await;
            assert_denied(&client, role, "SELECT begin_shadow_load('orders')").await;
            assert_denied(&client, role, "SELECT build_load_indexes('orders')").await;
            assert_denied(&client, role, "SELECT swap_in_shadow_load('orders')").await;
        }
    }
    // The tables are all still there, untouched.
    assert_eq!(db.scalar("SELECT count(*) FROM orders").await, 0);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'
             AND indexname IN ('orders_pkey', 'orders_customer_id_idx', 'barcodes_pkey', 'barcodes_order_id_idx')"
        )
        .await,
        4
    );
}

#[tokio::test]
async fn the_api_roles_write_only_what_a_sale_or_a_publish_writes() {
    let db = TestDatabase::create().await;
    let orders = db.pool_as(DatabaseRole::Orders).await;
    let orders = orders.get().await.unwrap();
    for statement in [
        "INSERT INTO ingestions (bucket, key, status) VALUES ('b', 'k', 'loaded')",
        "UPDATE ingestions SET status = 'failed'",
        "UPDATE barcodes SET ingestion_id = 1",
        "INSERT INTO barcodes (barcode) VALUES ('INTRUDER')",
        "INSERT INTO published_outputs VALUES ('b', 1)",
        "SELECT * FROM refinery_schema_history",
    ] {
        assert_denied(&orders, DatabaseRole::Orders, statement).await;
    }
    let analytics = db.pool_as(DatabaseRole::Analytics).await;
    let analytics = analytics.get().await.unwrap();
    for statement in [
        "INSERT INTO orders (order_id, customer_id) VALUES (1, 1)",
        "UPDATE barcodes SET order_id = 1",
        "UPDATE pipeline_stats SET data_version = 0",
        "UPDATE customer_tickets SET tickets = 0",
        "SELECT * FROM sales",
        "SELECT nextval('sale_order_ids')",
    ] {
        assert_denied(&analytics, DatabaseRole::Analytics, statement).await;
    }
}

#[tokio::test]
async fn every_table_has_its_privileges_decided() {
    // A migration that adds a table grants it explicitly to the roles that
    // use it (V4 explains why there are no default privileges); a table no
    // role may touch is a table someone forgot.
    let db = TestDatabase::create().await;
    let client = db.pool.get().await.unwrap();
    let forgotten: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S')
               AND c.relname <> 'refinery_schema_history'
               AND NOT EXISTS (
                   SELECT 1 FROM unnest($1::text[]) AS r(role)
                   WHERE CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(r.role, c.oid, 'USAGE')
                              ELSE has_table_privilege(r.role, c.oid, 'SELECT') END)
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                               WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
             ORDER BY 1",
            &[&DatabaseRole::ALL.map(DatabaseRole::group).to_vec()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        forgotten.is_empty(),
        "no function role may use {forgotten:?}: grant what the functions need in the migration \
         that creates them"
    );
}

#[tokio::test]
async fn a_shadow_load_swaps_in_the_indexes_constraints_and_privileges_the_migrations_define() {
    let db = TestDatabase::create().await;
    let definitions = || async {
        let client = db.pool.get().await.unwrap();
        client
            .query(
                "SELECT indexname::text, indexdef FROM pg_indexes
                 WHERE schemaname = 'public' AND tablename IN ('orders', 'barcodes')
                 UNION ALL
                 SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE conrelid IN ('public.orders'::regclass, 'public.barcodes'::regclass)
                 UNION ALL
                 SELECT 'privileges of ' || relname, relacl::text FROM pg_class
                 WHERE oid IN ('public.orders'::regclass, 'public.barcodes'::regclass)
                 UNION ALL
                 SELECT 'privileges of ' || attrelid::regclass::text || '.' || attname, attacl::text
                 FROM pg_attribute
                 WHERE attrelid IN ('public.orders'::regclass, 'public.barcodes'::regclass)
                   AND attacl IS NOT NULL
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let before = definitions().await;
    assert_eq!(before.len(), 4 + 6 + 2 + 2, "{before:?}");
    let ingest = db.pool_as(DatabaseRole::Ingest).await;
    let ingest = ingest.get().await.unwrap();
    ingest
        .batch_execute(
            "BEGIN;
             SELECT begin_shadow_load('orders'); SELECT begin_shadow_load('barcodes');
             SELECT build_load_indexes('orders'); SELECT build_load_indexes('barcodes');
             SELECT swap_in_shadow_load('orders'); SELECT swap_in_shadow_load('barcodes');
             COMMIT;",
        )
        .await
        .expect("ingest loads through shadow tables");
    assert_eq!(definitions().await, before);
    let error = ingest
        .batch_execute("SELECT begin_shadow_load('ingestions')")
        .await
        .expect_err("only orders and barcodes have shadow loads");
    let message = error.as_db_error().expect("a server error").message();
    assert!(message.contains("use orders or barcodes"), "{message}");
}

/// `count` orders from `first` on, one customer per ten orders.
fn orders_file(first: u64, count: u64) -> String {
    let mut body = String::from("order_id,customer_id\n");
    for id in first..first + count {
        body.push_str(&format!("{id},{}\n", 100 + id / 10));
    }
    body
}

/// One barcode per order of [`orders_file`], plus `unused` unsold ones.
fn barcodes_file(first: u64, count: u64, unused: u64) -> String {
    let mut body = String::from("barcode,order_id\n");
    for id in first..first + count {
        body.push_str(&format!("B{id:012},{id}\n"));
    }
    for n in 0..unused {
        body.push_str(&format!("U{first:08}{n:04},\n"));
    }
    body
}

/// A fingerprint of the load indexes' relations: changes when they are
/// dropped and built again.
const INDEX_OIDS: &str = "SELECT sum(c.oid::bigint)::bigint FROM pg_class c
    WHERE c.relname IN ('orders_pkey', 'orders_customer_id_idx', 'barcodes_pkey', 'barcodes_order_id_idx')
      AND c.relnamespace = 'public'::regnamespace";

#[tokio::test]
async fn ingest_loads_first_bulk_and_later_files_as_its_own_role() {
    let pipeline = TestPipeline::create().await;
    let ingestor = pipeline.ingestor_as(DatabaseRole::Ingest).await;
    let ingest_existing = |key: &'static str| {
        let (pipeline, ingestor) = (&pipeline, &ingestor);
        async move {
            ingestor
                .ingest(&ObjectRef::new(&pipeline.bucket.name, key))
                .await
                .unwrap_or_else(|e| panic!("ingesting {key} as the ingest role: {e}"))
        }
    };
    let ingest = |key: &'static str, body: String| {
        let (pipeline, ingest_existing) = (&pipeline, &ingest_existing);
        async move {
            pipeline.bucket.put(key, body).await;
            ingest_existing(key).await
        }
    };
    // First loads into empty tables: rows copied straight into a shadow
    // without indexes, indexes built, the shadow swapped in (through the
    // owner's functions).
    let first_orders = ingest("incoming/o1.csv", orders_file(1, 50)).await;
    assert_eq!(first_orders.status, IngestStatus::Loaded);
    assert_eq!(first_orders.counts.accepted, 50);
    let first_barcodes = ingest("incoming/b1.csv", barcodes_file(1, 50, 5)).await;
    assert_eq!(first_barcodes.counts.accepted, 55);
    // Bulk mode: each load more than doubles its table (over 10,000 rows),
    // so it loads a shadow too: the indexes come back as new relations.
    let index_oids = || pipeline.scalar(INDEX_OIDS);
    let after_first_loads = index_oids().await;
    let bulk_orders = ingest("incoming/o2.csv", orders_file(1000, 12_000)).await;
    assert_eq!(bulk_orders.counts.accepted, 12_000);
    let bulk_barcodes = ingest("incoming/b2.csv", barcodes_file(1000, 12_000, 0)).await;
    assert_eq!(bulk_barcodes.counts.accepted, 12_000);
    let after_bulk_loads = index_oids().await;
    assert_ne!(
        after_bulk_loads, after_first_loads,
        "bulk loads rebuild the indexes"
    );
    // A plain later load: staging, merge, a stored unsold barcode sold, a
    // repeat rejected.
    let later = ingest(
        "incoming/b3.csv",
        format!("barcode,order_id\nU{:08}0000,7\nB{:012},8\n", 1, 1),
    )
    .await;
    assert_eq!(later.counts.accepted, 1);
    assert_eq!(later.counts.rejected, 1);
    assert_eq!(
        index_oids().await,
        after_bulk_loads,
        "a small load keeps the indexes"
    );
    // A file rejected whole is recorded in the ledger by the same role, and a
    // redelivery is answered from it.
    let rejected = ingest("incoming/empty.csv", String::new()).await;
    assert_eq!(rejected.status, IngestStatus::Rejected);
    let again = ingest_existing("incoming/empty.csv").await;
    assert_eq!(again.status, IngestStatus::AlreadyIngested);

    assert_eq!(pipeline.scalar("SELECT count(*) FROM orders").await, 12_050);
    assert_eq!(
        pipeline.scalar("SELECT count(*) FROM barcodes").await,
        12_055
    );
    assert_eq!(
        pipeline
            .scalar("SELECT tickets FROM customer_tickets WHERE customer_id = 100")
            .await,
        10,
        "orders 1-9 have a barcode each, and order 7 the sold one"
    );
    assert_eq!(
        pipeline
            .scalar(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'
                 AND indexname IN ('orders_pkey', 'orders_customer_id_idx', 'barcodes_pkey', 'barcodes_order_id_idx')"
            )
            .await,
        4
    );
    let processed = pipeline
        .bucket
        .get_text(PROCESSED_ORDERS_KEY)
        .await
        .expect("published");
    assert_eq!(processed.lines().count(), 1 + 12_050);
}

#[test]
fn make_up_gives_each_function_its_own_database_user() {
    // scripts/local.sh makes a user per function in its role and writes
    // .local/env/<function>.env; `cargo lambda watch` reads that file for
    // that function only (its Cargo.toml's [package.metadata.lambda.watch]).
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let local_sh = std::fs::read_to_string(format!("{root}/scripts/local.sh")).unwrap();
    let shared_env = local_sh
        .split("write_env_file() {")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("write_env_file in local.sh");
    assert!(
        !shared_env.contains("DATABASE_URL"),
        "the env file every function reads must not hold the owner's DATABASE_URL"
    );
    for role in DatabaseRole::ALL {
        let function = role.function();
        assert!(
            local_sh.contains(&format!("{function}:{}", role.group())),
            "local.sh's FUNCTION_ROLES gives {function} no user in {}",
            role.group()
        );
        let manifest =
            std::fs::read_to_string(format!("{root}/functions/{function}/Cargo.toml")).unwrap();
        let watch = manifest
            .split("[package.metadata.lambda.watch]")
            .nth(1)
            .unwrap_or_else(|| panic!("functions/{function}/Cargo.toml has no lambda watch env"));
        assert!(
            watch.contains(&format!("env_file = \".local/env/{function}.env\"")),
            "functions/{function}/Cargo.toml: {watch}"
        );
    }
}
