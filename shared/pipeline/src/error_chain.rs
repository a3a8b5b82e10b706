//! Errors at the edge (a log line, a report, a ledger row): the error and
//! every cause under it, each `#[source]` kept by the error that wraps it.

use std::error::Error;
use std::fmt;

/// Displays an error followed by its causes, `outer: cause: root cause`,
/// as `aws_sdk_*::error::DisplayErrorContext` walks an SDK error's (without
/// its `Debug` dump).
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the report failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_the_error() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "writing the report failed: disk full"
        );
    }
}
