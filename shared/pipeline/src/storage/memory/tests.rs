//! The in-memory store against what the pipeline expects of S3 (the S3
//! adapter's own tests are shared/pipeline/tests/storage.rs).

use tokio::io::AsyncReadExt;

use super::*;

async fn read(store: &MemoryStore, object: &ObjectRef) -> (Vec<u8>, OpenedObject) {
    let mut opened = match store.open(object).await {
        Ok(opened) => opened,
        Err(error) => panic!("opening {}: {error}", object.key),
    };
    let mut body = Vec::new();
    opened.reader.read_to_end(&mut body).await.unwrap();
    (body, opened)
}

#[tokio::test]
async fn a_missing_object_is_reported_as_not_found() {
    let store = MemoryStore::versioned();
    let error = match store.open(&ObjectRef::new("b", "incoming/none.csv")).await {
        Err(error) => error,
        Ok(_) => panic!("opened a missing object"),
    };
    assert!(error.not_found);
    assert!(error.to_string().contains("incoming/none.csv"), "{error}");
}

#[tokio::test]
async fn a_file_put_reads_back_whole_with_the_etag_it_was_given() {
    let store = MemoryStore::versioned();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"customer_id,order_id,barcodes\n").unwrap();
    let etag = store
        .put_file(
            NewObject {
                bucket: "b",
                key: "processed/p.csv",
                content_type: "text/csv",
            },
            file.path(),
        )
        .await
        .unwrap();
    assert_eq!(store.etag("b", "processed/p.csv").await.unwrap(), etag);
    let (body, opened) = read(&store, &ObjectRef::new("b", "processed/p.csv")).await;
    assert_eq!(body, b"customer_id,order_id,barcodes\n");
    assert_eq!(opened.etag, etag);
    assert_eq!(opened.size, Some(body.len() as i64));
}

#[tokio::test]
async fn a_version_named_reads_its_own_bytes_after_an_overwrite_or_a_delete() {
    let store = MemoryStore::versioned();
    let (first_etag, first) = store.insert("b", "k", b"one".to_vec());
    let (second_etag, second) = store.insert("b", "k", b"two".to_vec());
    assert_ne!(first, second);
    assert_ne!(first_etag, second_etag, "the ETag follows the content");
    let named = ObjectRef {
        version_id: first.clone(),
        ..ObjectRef::new("b", "k")
    };
    let (body, opened) = read(&store, &named).await;
    assert_eq!((body.as_slice(), opened.version_id), (&b"one"[..], first));
    store.delete("b", "k");
    assert_eq!(store.etag("b", "k").await.unwrap(), None);
    assert!(store.get("b", "k").is_none());
    assert_eq!(read(&store, &named).await.0, b"one");
}

#[tokio::test]
async fn an_unversioned_object_named_by_an_old_etag_is_superseded() {
    let store = MemoryStore::unversioned();
    let (etag, version_id) = store.insert("b", "k", b"one".to_vec());
    assert_eq!(version_id, None);
    let named = ObjectRef {
        etag: Some(etag),
        ..ObjectRef::new("b", "k")
    };
    assert_eq!(read(&store, &named).await.0, b"one");
    store.insert("b", "k", b"two".to_vec());
    match store.open(&named).await {
        Err(error) => assert!(error.superseded && !error.not_found, "{error}"),
        Ok(_) => panic!("opened content the ETag does not name"),
    }
    store.delete("b", "k");
    assert_eq!(store.etag("b", "k").await.unwrap(), None);
}

#[tokio::test]
async fn composed_objects_read_back_as_their_sources_one_after_the_other() {
    let store = MemoryStore::versioned().with_min_part_size(8);
    store.insert(
        "b",
        "s/1",
        b"customer_id,order_id,barcodes\n1,1,[A]\n".to_vec(),
    );
    store.insert("b", "s/2", b"2,2,[B]\n".to_vec());
    let to = NewObject {
        bucket: "b",
        key: "processed/p.csv",
        content_type: "text/csv",
    };
    let sources = |keys: &[&'static str]| {
        keys.iter()
            .map(|k| ComposeSource::any(k))
            .collect::<Vec<_>>()
    };
    let etag = store.compose(to, &sources(&["s/1", "s/2"])).await.unwrap();
    assert_eq!(store.etag("b", "processed/p.csv").await.unwrap(), etag);
    let (body, _) = read(&store, &ObjectRef::new("b", "processed/p.csv")).await;
    assert_eq!(body, b"customer_id,order_id,barcodes\n1,1,[A]\n2,2,[B]\n");
    let missing = store
        .compose(to, &sources(&["s/1", "s/3"]))
        .await
        .unwrap_err();
    assert!(
        missing.not_found && missing.to_string().contains("s/3"),
        "{missing}"
    );
    // As S3: a part but the last needs the smallest part's size.
    store.insert("b", "s/small", b"3,3,[C]".to_vec());
    let too_small = store
        .compose(to, &sources(&["s/small", "s/2"]))
        .await
        .unwrap_err();
    assert!(too_small.to_string().contains("s/small"), "{too_small}");
    assert!(store
        .compose(to, &sources(&["s/2", "s/small"]))
        .await
        .is_ok());
    // A source named with its ETag is taken only with that content.
    let s2 = store.etag("b", "s/2").await.unwrap().unwrap();
    let exactly = |etag| {
        [ComposeSource {
            key: "s/2",
            etag: Some(etag),
        }]
    };
    assert!(store.compose(to, &exactly(&s2)).await.is_ok());
    store.insert("b", "s/2", b"other".to_vec());
    let changed = store.compose(to, &exactly(&s2)).await.unwrap_err();
    assert!(
        changed.superseded && changed.to_string().contains("s/2"),
        "{changed}"
    );
}
