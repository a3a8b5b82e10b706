//! Uploads from a browser (the dashboard): which names may be uploaded to
//! `incoming/`, how large, and the bucket's CORS rule that lets the
//! dashboard's origin PUT them with a presigned URL. The local bootstrap
//! and infra/template.yaml set the same rule (the drift test compares them).

use crate::config::{INCOMING_PREFIX, INCOMING_SUFFIX};

/// The largest file a browser may upload in one presigned PUT. (S3 takes up
/// to 5 GiB in one PUT; a browser upload of more would be fragile, and
/// larger drops go in with `aws s3 cp`, which uses multipart.)
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;

/// The longest file name accepted.
pub const MAX_NAME_LEN: usize = 100;

/// The content type a presigned upload is signed for.
pub const UPLOAD_CONTENT_TYPE: &str = "text/csv";

/// The bucket's CORS rule for browser uploads: what the dashboard's origin
/// may send, and which answer headers its script may read (the ETag and
/// version id name the version it uploaded, to follow its ingestion).
pub const CORS_METHODS: [&str; 1] = ["PUT"];
pub const CORS_ALLOWED_HEADERS: [&str; 1] = ["content-type"];
pub const CORS_EXPOSED_HEADERS: [&str; 2] = ["ETag", "x-amz-version-id"];
pub const CORS_MAX_AGE_SECS: i32 = 3600;

/// Why an upload's name or size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefused {
    #[error("the name is empty")]
    EmptyName,
    #[error("the name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error(
        "the name {0:?} has characters other than letters, digits, '.', '_' and '-' \
         (or starts with '.'); rename the file"
    )]
    BadCharacters(String),
    #[error("the name {0:?} does not end in {INCOMING_SUFFIX}: only CSV files are ingested")]
    NotCsv(String),
    #[error("the file is empty")]
    Empty,
    #[error(
        "the file is {0} bytes, more than the {MAX_UPLOAD_BYTES} a browser upload takes; \
         copy it with `aws s3 cp` instead"
    )]
    TooLarge(u64),
}

/// The key a browser upload of `name` (a bare file name) goes to,
/// `incoming/<name>`; refuses names that would land elsewhere, would not be
/// ingested, or need encoding.
pub fn incoming_key(name: &str) -> Result<String, UploadRefused> {
    if name.is_empty() {
        return Err(UploadRefused::EmptyName);
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(UploadRefused::NameTooLong);
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.starts_with('.') || !name.chars().all(plain) {
        return Err(UploadRefused::BadCharacters(name.to_owned()));
    }
    // The notification's suffix filter is case-sensitive, as S3's is.
    if !name.ends_with(INCOMING_SUFFIX) || name.len() == INCOMING_SUFFIX.len() {
        return Err(UploadRefused::NotCsv(name.to_owned()));
    }
    Ok(format!("{INCOMING_PREFIX}{name}"))
}

/// Refuses sizes a browser upload may not have.
pub fn check_size(bytes: u64) -> Result<(), UploadRefused> {
    match bytes {
        0 => Err(UploadRefused::Empty),
        b if b > MAX_UPLOAD_BYTES => Err(UploadRefused::TooLarge(b)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_csv_names_go_to_incoming() {
        assert_eq!(incoming_key("orders.csv").unwrap(), "incoming/orders.csv");
        assert_eq!(
            incoming_key("barcodes_2026-12-02.v2.csv").unwrap(),
            "incoming/barcodes_2026-12-02.v2.csv"
        );
    }

    #[test]
    fn names_that_would_land_elsewhere_or_not_be_ingested_are_refused() {
        for name in [
            "../orders.csv",
            "a/b.csv",
            ".csv",
            ".hidden.csv",
            "a b.csv",
            "é.csv",
            "x.csv\n",
        ] {
            assert!(
                matches!(
                    incoming_key(name),
                    Err(UploadRefused::BadCharacters(_) | UploadRefused::NotCsv(_))
                ),
                "{name:?}"
            );
        }
        assert_eq!(
            incoming_key("orders.txt"),
            Err(UploadRefused::NotCsv("orders.txt".into()))
        );
        assert_eq!(
            incoming_key("orders.CSV"),
            Err(UploadRefused::NotCsv("orders.CSV".into()))
        );
        assert_eq!(incoming_key(""), Err(UploadRefused::EmptyName));
        let long = format!("{}.csv", "a".repeat(MAX_NAME_LEN));
        assert_eq!(incoming_key(&long), Err(UploadRefused::NameTooLong));
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(check_size(1).is_ok());
        assert!(check_size(MAX_UPLOAD_BYTES).is_ok());
        assert_eq!(check_size(0), Err(UploadRefused::Empty));
        assert_eq!(
            check_size(MAX_UPLOAD_BYTES + 1),
            Err(UploadRefused::TooLarge(MAX_UPLOAD_BYTES + 1))
        );
    }
}
