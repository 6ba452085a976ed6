//! JSON cache files sealed with a checksum: `{"payload": …, "sha256": "…"}`, the sha256 of the
//! payload's own serialization by serde_json. Damage that leaves valid JSON — a changed digit in
//! a sensitivity or in a saved search's genome — would otherwise be read as data; a sealed file
//! is read back only when the payload it holds serializes to the digest it was saved with.
//! Formatting alone (spaces, a number written `1.50` for `1.5`) changes nothing that is read,
//! so it is not damage.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize)]
struct Seal<'a, T> {
    payload: &'a T,
    sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed<T> {
    payload: T,
    sha256: String,
}

/// The sha256 (hex) of `payload` as serde_json writes it.
fn digest<T: Serialize>(payload: &T) -> String {
    let text = serde_json::to_string(payload).expect("a cache payload serializes");
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The text of a sealed file holding `payload`.
pub fn seal<T: Serialize>(payload: &T) -> String {
    serde_json::to_string(&Seal { payload, sha256: digest(payload) }).expect("a cache payload serializes")
}

/// The payload of a sealed file's `text`; Err(why) when it is not one, or when what it holds
/// does not match its sha256.
pub fn open<T: Serialize + DeserializeOwned>(text: &str) -> Result<T, String> {
    let s: Sealed<T> = serde_json::from_str(text).map_err(|e| format!("not a sealed cache file: {e}"))?;
    if digest(&s.payload) != s.sha256 {
        return Err("its contents do not match their sha256".into());
    }
    Ok(s.payload)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A sealed map reads back; a changed digit, a changed key or a changed digest does not;
    /// spacing does not matter.
    #[test]
    fn a_sealed_payload_reads_back_only_undamaged() {
        let m: BTreeMap<String, f64> = [("a".to_string(), 0.015625), ("b".to_string(), 1e-7)].into();
        let text = seal(&m);
        assert_eq!(open::<BTreeMap<String, f64>>(&text).unwrap(), m);
        assert_eq!(open::<BTreeMap<String, f64>>(&text.replace(',', " ,\n ")).unwrap(), m);
        for damaged in [
            text.replace("0.015625", "0.015626"),
            text.replace("\"b\"", "\"c\""),
            text.replacen("\"sha256\":\"", "\"sha256\":\"0", 1),
        ] {
            assert_ne!(damaged, text);
            let why = open::<BTreeMap<String, f64>>(&damaged).unwrap_err();
            assert!(why.contains("sha256"), "{why}");
        }
        assert!(open::<BTreeMap<String, f64>>("{\"a\": 0.5}").unwrap_err().starts_with("not a sealed cache file"));
    }
}
