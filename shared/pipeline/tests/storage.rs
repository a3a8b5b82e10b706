//! The S3 adapter against LocalStack.

use std::io::Write;

use order_pipeline::storage::{NewObject, ObjectRef, ObjectStore, S3Store};
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
