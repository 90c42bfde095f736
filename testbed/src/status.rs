//! The daemons' status documents (mlrd's and tmipd's SIGUSR1 JSON), read
//! with a real JSON parser: tests look fields up by name, never by the
//! layout of the text.

use std::fs;
use std::path::Path;
use std::time::Duration;

/// A parsed status document (`Json::Null`: none was written).
pub type Json = serde_json::Value;

/// Parse the status document `text` that `who` wrote. A document that is
/// not JSON is a daemon bug: the test fails here, naming it.
pub fn parse(who: &str, text: &str) -> Json {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{who}'s status is not JSON ({e}):\n{text}"))
}

/// Remove `path`, run `signal` (SIGUSR1 to the daemon) and wait up to 5 s
/// for the new document there; `Json::Null` if none came.
pub fn fresh(who: &str, path: &Path, signal: impl FnOnce()) -> Json {
    let _ = fs::remove_file(path);
    signal();
    // Written to a temporary file and renamed: never half a document.
    match crate::ns::wait_for(Duration::from_secs(5), || fs::read_to_string(path).ok()) {
        Some(t) => parse(who, &t),
        None => Json::Null,
    }
}

/// `doc[key]` as a number (0 when absent, as a counter not yet counted);
/// `key` may be a path (`"offers/held"`).
pub fn number(doc: &Json, key: &str) -> u64 {
    doc.pointer(&format!("/{key}"))
        .and_then(Json::as_u64)
        .unwrap_or(0)
}

/// The bindings mlrd's status lists (`bindings`).
pub fn mlr_bindings(doc: &Json) -> &[Json] {
    doc["bindings"].as_array().map_or(&[], Vec::as_slice)
}

/// mlrd's binding of the station with MAC `mac` (any case).
pub fn mlr_binding<'a>(doc: &'a Json, mac: &str) -> Option<&'a Json> {
    mlr_bindings(doc).iter().find(|b| {
        b["mac"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
    })
}

/// The CN with register index `index` in mlrd's status (`cns`).
pub fn mlr_cn(doc: &Json, index: u64) -> Option<&Json> {
    doc["cns"]
        .as_array()?
        .iter()
        .find(|c| c["index"].as_u64() == Some(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bindings_cns_and_numbers_by_name() {
        let d = parse(
            "mlrd",
            r#"{"cns":[{"index":0,"addr":"10.0.0.1"},{"index":1,"addr":"10.0.0.2"}],
               "bindings":[{"mac":"02:AA:00:00:00:01","at":1}],
               "offers":{"held":3}}"#,
        );
        assert_eq!(
            mlr_binding(&d, "02:aa:00:00:00:01").map(|b| &b["at"]),
            Some(&1.into())
        );
        assert!(mlr_binding(&d, "02:aa:00:00:00:02").is_none());
        assert_eq!(mlr_cn(&d, 1).map(|c| &c["addr"]), Some(&"10.0.0.2".into()));
        assert_eq!(number(&d, "offers/held"), 3);
        assert_eq!(number(&d, "offers/none"), 0);
        assert!(mlr_bindings(&Json::Null).is_empty());
    }

    #[test]
    #[should_panic(expected = "not JSON")]
    fn a_broken_document_fails_the_test() {
        parse("mlrd", "{\"a\": ");
    }
}
