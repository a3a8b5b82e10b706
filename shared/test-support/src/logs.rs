//! Log lines captured during a test.

/// Log lines written during a test, as [`order_pipeline::telemetry::subscriber`]
/// formats them: pass it as the writer, read [`LogCapture::text`].
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }

    /// Asserts that one captured line holds every one of `fragments`, each
    /// field of the JSON line read as `name="value"`.
    pub fn assert_a_line_with(&self, fragments: &[&str]) {
        use serde_json::Value;
        let lines: Vec<String> = self
            .text()
            .lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(fields)) => fields
                    .iter()
                    .map(|(name, value)| match value {
                        Value::String(text) => format!("{name}=\"{text}\""),
                        other => format!("{name}={other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => line.to_owned(),
            })
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| fragments.iter().all(|f| l.contains(f))),
            "no log line holds all of {fragments:?}: {lines:#?}"
        );
    }

    /// Routes this thread's logs, at the level `rust_log` asks for, through
    /// the functions' own subscriber into this capture, until the guard
    /// drops. `#[tokio::test]` runs every task on the test's thread, so
    /// they are all captured.
    pub fn install(&self, rust_log: &str) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::util::SubscriberInitExt;
        order_pipeline::telemetry::subscriber(
            order_pipeline::telemetry::filter(Some(rust_log), None),
            self.clone(),
        )
        .set_default()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}
