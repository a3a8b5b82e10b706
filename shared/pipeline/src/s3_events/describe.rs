//! Naming what an unrecognized or malformed body was, briefly: its shape,
//! never its content, and short whatever the input.

use serde_json::Value;

/// At most this many top-level keys, each at most this long, name an
/// unrecognized body in errors and logs.
const KEYS_SHOWN: usize = 8;
const NAME_CHARS: usize = 40;

/// A short description of an unrecognized value: its JSON type and, for an
/// object, its keys (or the sources its records name).
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "an empty JSON object".to_owned(),
        Value::Object(map) => match map.get("Records").and_then(Value::as_array) {
            Some(records) => {
                let sources: Vec<String> = records
                    .iter()
                    .take(KEYS_SHOWN)
                    .map(|r| {
                        r.get("eventSource")
                            .or_else(|| r.get("EventSource"))
                            .and_then(Value::as_str)
                            .map_or_else(|| "an unnamed source".to_owned(), shorten)
                    })
                    .collect();
                format!(
                    "an event of {} record(s) from {}",
                    records.len(),
                    if sources.is_empty() {
                        "nowhere".to_owned()
                    } else {
                        sources.join(", ")
                    }
                )
            }
            None => {
                let keys: Vec<String> = map.keys().take(KEYS_SHOWN).map(|k| shorten(k)).collect();
                let more = map.len().saturating_sub(KEYS_SHOWN);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("a JSON object with keys {}{more}", keys.join(", "))
            }
        },
        Value::Array(items) => format!("a JSON array of {} item(s)", items.len()),
        Value::String(_) => "a JSON string".to_owned(),
        Value::Number(_) => "a JSON number".to_owned(),
        Value::Bool(_) => "a JSON boolean".to_owned(),
        Value::Null => "JSON null".to_owned(),
    }
}

/// A name from the input, quoted with its characters escaped as Rust's
/// `{:?}` does, cut to [`NAME_CHARS`] characters of that: a name of
/// characters that all need escaping stays as short as any other.
fn shorten(name: &str) -> String {
    let mut short = String::from("\"");
    let mut utf8 = [0; 4];
    for c in name.chars() {
        let quoted = format!("{:?}", &*c.encode_utf8(&mut utf8));
        let escaped = &quoted[1..quoted.len() - 1];
        if short.chars().count() - 1 + escaped.chars().count() > NAME_CHARS {
            short.push('…');
            break;
        }
        short.push_str(escaped);
    }
    short.push('"');
    short
}

/// At most this many characters of a parser's message name what is
/// malformed, from its start (what was found, which may quote a value from
/// the body) and its end (what was expected).
const MESSAGE_HEAD_CHARS: usize = 120;
const MESSAGE_TAIL_CHARS: usize = 80;

pub(super) fn brief_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let chars = message.chars().count();
    if chars <= MESSAGE_HEAD_CHARS + MESSAGE_TAIL_CHARS {
        return message;
    }
    let head: String = message.chars().take(MESSAGE_HEAD_CHARS).collect();
    let tail: String = message.chars().skip(chars - MESSAGE_TAIL_CHARS).collect();
    format!("{head}…{tail}")
}
