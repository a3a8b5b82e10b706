//! Input text carried into outputs (the database, reports, rejects files and
//! the ledger): escaped so that any store can hold it, bounded so that a
//! hostile file cannot make them huge, and kept inert in spreadsheets.

use std::borrow::Cow;
use std::fmt::Write;

/// Input text kept per value in a report, rejects file or ledger error.
pub const MAX_CARRIED_BYTES: usize = 1024;

/// `text` as it may be stored and shown: control characters other than tab,
/// LF and CR escaped as Rust writes them (NUL as `\0`, ESC as `\u{1b}`),
/// since PostgreSQL text cannot hold NUL and the others hide on screen; then
/// cut to [`MAX_CARRIED_BYTES`] with a marker `…(truncated, N bytes)` giving
/// the original length.
pub fn storable(text: &str) -> String {
    carried(text, text.len())
}

/// [`storable`] for bytes that may not be UTF-8 (the start of a record too
/// large to read): invalid sequences become U+FFFD.
pub fn storable_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(MAX_CARRIED_BYTES)];
    carried(&String::from_utf8_lossy(head), bytes.len())
}

/// `text`, the first part of an input of `original_len` bytes, escaped and cut.
fn carried(text: &str, original_len: usize) -> String {
    let is_hidden = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    if original_len <= MAX_CARRIED_BYTES && !text.contains(is_hidden) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(MAX_CARRIED_BYTES + 32);
    let mut consumed = 0;
    for c in text.chars() {
        if out.len() >= MAX_CARRIED_BYTES {
            break;
        }
        if is_hidden(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
        consumed += c.len_utf8();
    }
    if consumed < original_len || out.len() > MAX_CARRIED_BYTES {
        let mut cut = out.len().min(MAX_CARRIED_BYTES);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        let _ = write!(out, "…(truncated, {original_len} bytes)");
    }
    out
}

/// A rejects-file cell that a spreadsheet shows as text and never evaluates:
/// a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`
/// (OWASP's advice on CSV injection). Negative numbers such as `-5` are
/// prefixed too; the JSON report keeps every value raw.
pub fn spreadsheet_cell(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_layout_kept() {
        assert_eq!(storable("A\0B"), r"A\0B");
        assert_eq!(storable("a\u{1b}[31m"), r"a\u{1b}[31m");
        assert_eq!(storable("a\tb\r\nc"), "a\tb\r\nc");
        assert_eq!(storable("plain"), "plain");
    }

    #[test]
    fn long_text_is_cut_with_its_length() {
        let long = "é".repeat(MAX_CARRIED_BYTES);
        let carried = storable(&long);
        assert!(carried.len() <= MAX_CARRIED_BYTES + 40, "{}", carried.len());
        assert!(carried.ends_with(&format!("…(truncated, {} bytes)", long.len())));
        let exact = "x".repeat(MAX_CARRIED_BYTES);
        assert_eq!(storable(&exact), exact);
        let nul_heavy = "\0".repeat(MAX_CARRIED_BYTES);
        assert!(storable(&nul_heavy).ends_with(&format!("(truncated, {MAX_CARRIED_BYTES} bytes)")));
        let bytes = [b'\xff'; 3 * MAX_CARRIED_BYTES];
        let carried = storable_bytes(&bytes);
        assert!(carried.starts_with('\u{fffd}'));
        assert!(carried.ends_with(&format!("(truncated, {} bytes)", bytes.len())));
    }

    #[test]
    fn formula_cells_are_prefixed() {
        for cell in ["=1+1", "+1", "-5", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_cell(cell), format!("'{cell}"));
        }
        for cell in ["", "12", "a=b", "'quoted"] {
            assert_eq!(spreadsheet_cell(cell), cell);
        }
    }
}
