//! The S3 adapter against LocalStack.

use std::io::Write;

use order_pipeline::storage::{
    ComposeSource, NewObject, ObjectRef, ObjectStore, S3Store, MIN_PART_SIZE,
};
use pipeline_test_support::TestBucket;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn large_files_are_uploaded_in_parts_and_read_back_whole() {
    let bucket = TestBucket::create().await;
    let store =
        S3Store::new(bucket.client.clone()).with_multipart(5 * 1024 * 1024, 5 * 1024 * 1024);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let line = b"0123456789abcdef,0123456789abcdef,[0123456789]\n";
    let mut expected = Vec::new();
    while expected.len() < 12 * 1024 * 1024 {
        expected.extend_from_slice(line);
    }
    file.write_all(&expected).unwrap();
    file.flush().unwrap();
    store
        .put_file(
            NewObject {
                bucket: &bucket.name,
                key: "processed/big.csv",
                content_type: "text/csv",
            },
            file.path(),
        )
        .await
        .unwrap();

    let head = bucket
        .client
        .head_object()
        .bucket(&bucket.name)
        .key("processed/big.csv")
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().contains("-3"),
        "a 3-part upload: {:?}",
        head.e_tag()
    );
    let mut opened = store
        .open(&ObjectRef::new(&bucket.name, "processed/big.csv"))
        .await
        .unwrap();
    let mut read = Vec::new();
    opened.reader.read_to_end(&mut read).await.unwrap();
    assert!(read == expected, "the object differs from the file");
    assert_eq!(opened.size, Some(expected.len() as i64));
}

#[tokio::test]
async fn a_missing_object_is_reported_as_not_found() {
    let bucket = TestBucket::create().await;
    let store = S3Store::new(bucket.client.clone());
    let error = match store
        .open(&ObjectRef::new(&bucket.name, "incoming/none.csv"))
        .await
    {
        Err(error) => error,
        Ok(_) => panic!("opened a missing object"),
    };
    assert!(error.not_found);
    assert!(error.to_string().contains("incoming/none.csv"), "{error}");
}

/// processed_orders.csv from segments: parts copied on S3's side, in order,
/// the content type the new object's; one source is a plain copy.
#[tokio::test]
async fn objects_composed_of_others_read_back_as_their_sources_in_order() {
    let bucket = TestBucket::create().await;
    let store = S3Store::new(bucket.client.clone());
    let segment = |fill: u8, len: usize| vec![fill; len];
    let sources = [
        ("segments/a b+1.csv", segment(b'a', MIN_PART_SIZE as usize)),
        ("segments/2.csv", segment(b'b', MIN_PART_SIZE as usize + 17)),
        ("segments/3.csv", segment(b'c', 5)),
    ];
    for (key, body) in &sources {
        bucket.put(key, body.clone()).await;
    }
    let to = |key| NewObject {
        bucket: &bucket.name,
        key,
        content_type: "text/csv; charset=utf-8",
    };
    let keys: Vec<ComposeSource> = sources
        .iter()
        .map(|(key, _)| ComposeSource::any(key))
        .collect();
    let etag = store.compose(to("processed/all.csv"), &keys).await.unwrap();
    let expected: Vec<u8> = sources.iter().flat_map(|(_, body)| body.clone()).collect();
    let head = bucket
        .client
        .head_object()
        .bucket(&bucket.name)
        .key("processed/all.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/csv; charset=utf-8"));
    assert_eq!(etag.as_deref(), head.e_tag().map(|t| t.trim_matches('"')));
    let mut read = Vec::new();
    store
        .open(&ObjectRef::new(&bucket.name, "processed/all.csv"))
        .await
        .unwrap()
        .reader
        .read_to_end(&mut read)
        .await
        .unwrap();
    assert!(
        read == expected,
        "the composed object differs from its sources"
    );

    store
        .compose(to("processed/one.csv"), &keys[2..])
        .await
        .unwrap();
    assert_eq!(bucket.get_text("processed/one.csv").await.unwrap(), "ccccc");

    let missing = store
        .compose(
            to("processed/none.csv"),
            &[
                ComposeSource::any("segments/2.csv"),
                ComposeSource::any("segments/none.csv"),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        missing.not_found && missing.to_string().contains("segments/none.csv"),
        "{missing}"
    );

    // Sources named with their ETags: taken only with that content, in a
    // copy and in a multipart copy alike.
    let etag_of = |key| {
        let store = &store;
        let bucket = &bucket;
        async move { store.etag(&bucket.name, key).await.unwrap().unwrap() }
    };
    let (first, last) = (
        etag_of("segments/a b+1.csv").await,
        etag_of("segments/3.csv").await,
    );
    let exact = [
        ComposeSource {
            key: "segments/a b+1.csv",
            etag: Some(&first),
        },
        ComposeSource {
            key: "segments/3.csv",
            etag: Some(&last),
        },
    ];
    store
        .compose(to("processed/exact.csv"), &exact)
        .await
        .unwrap();
    bucket.put("segments/3.csv", b"other".to_vec()).await;
    for sources in [&exact[..], &exact[1..]] {
        let changed = store
            .compose(to("processed/exact.csv"), sources)
            .await
            .unwrap_err();
        assert!(changed.superseded, "{changed}");
    }
}
