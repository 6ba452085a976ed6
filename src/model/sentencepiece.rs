//! SentencePiece model files (`tokenizer.model`): the pieces of a `ModelProto` — text, score,
//! type — read from its protobuf encoding (field 1, repeated `SentencePiece { piece = 1,
//! score = 2, type = 3 }`; every other field skipped).

use std::path::Path;

use super::{ModelError, Result};

/// `SentencePiece.Type`.
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    pub kind: i32,
}

/// A protobuf reader over `buf`.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.buf.get(self.at..end)?;
        self.at = end;
        Some(b)
    }

    /// The next field: (number, wire type, payload for length-delimited fields / fixed32 bits /
    /// varint value).
    fn field(&mut self) -> Option<(u64, Field<'a>)> {
        let key = self.varint()?;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.bytes(8)?;
                Field::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Field::Bytes(self.bytes(n)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?)),
            _ => return None,
        };
        Some((key >> 3, f))
    }
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Fixed64,
}

/// The pieces of the SentencePiece model `bytes`; `path` names it in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Piece>> {
    let bad = |what: &str| ModelError::Tokenizer(format!("{}: not a SentencePiece model ({what})", path.display()));
    let mut r = Reader { buf: bytes, at: 0 };
    let mut pieces = Vec::new();
    while r.at < bytes.len() {
        let (number, field) = r.field().ok_or_else(|| bad("truncated or malformed protobuf"))?;
        let Field::Bytes(body) = field else { continue };
        if number != 1 {
            continue;
        }
        let mut p = Reader { buf: body, at: 0 };
        let mut piece = Piece { text: String::new(), score: 0.0, kind: NORMAL };
        while p.at < body.len() {
            match p.field().ok_or_else(|| bad("a malformed piece"))? {
                (1, Field::Bytes(t)) => {
                    piece.text = String::from_utf8(t.to_vec()).map_err(|_| bad("a piece that is not UTF-8"))?
                }
                (2, Field::Fixed32(bits)) => piece.score = f32::from_bits(bits),
                (3, Field::Varint(k)) => piece.kind = i32::try_from(k).map_err(|_| bad("a piece type out of range"))?,
                _ => {}
            }
        }
        pieces.push(piece);
    }
    if pieces.is_empty() {
        return Err(bad("no pieces"));
    }
    Ok(pieces)
}

/// Whether the model's normalizer prepends a space to the text (`NormalizerSpec` is field 3,
/// its `add_dummy_prefix` field 3, true unless set): Llama 2 and Mistral do, Gemma does not.
pub fn add_dummy_prefix(bytes: &[u8]) -> bool {
    let mut r = Reader { buf: bytes, at: 0 };
    let mut prefix = true;
    while r.at < bytes.len() {
        let Some((number, field)) = r.field() else { break };
        let (3, Field::Bytes(body)) = (number, field) else { continue };
        let mut n = Reader { buf: body, at: 0 };
        while n.at < body.len() {
            match n.field() {
                Some((3, Field::Varint(v))) => prefix = v != 0,
                Some(_) => {}
                None => break,
            }
        }
    }
    prefix
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<Vec<Piece>> {
    let bytes = std::fs::read(path).map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
    parse(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_read_and_other_fields_skipped() {
        // ModelProto { pieces: [{"<unk>", 0.0, UNKNOWN}, {"▁a", -1.5}], trainer_spec: {…} }
        let mut m = Vec::new();
        let piece = |text: &str, score: f32, kind: Option<u8>| {
            let mut p = vec![0x0a, text.len() as u8];
            p.extend(text.as_bytes());
            p.push(0x15);
            p.extend(score.to_le_bytes());
            if let Some(k) = kind {
                p.extend([0x18, k]);
            }
            p
        };
        for p in [piece("<unk>", 0.0, Some(2)), piece("\u{2581}a", -1.5, None)] {
            m.extend([0x0a, p.len() as u8]);
            m.extend(p);
        }
        m.extend([0x12, 0x02, 0x08, 0x01]);
        let got = parse(Path::new("t.model"), &m).unwrap();
        assert_eq!(
            got,
            vec![
                Piece { text: "<unk>".into(), score: 0.0, kind: UNKNOWN },
                Piece { text: "\u{2581}a".into(), score: -1.5, kind: NORMAL }
            ]
        );
        assert!(parse(Path::new("t.model"), &m[..m.len() - 3]).is_err());
        assert!(parse(Path::new("t.model"), b"{\"not\": \"protobuf\"}").is_err());
        // No normalizer spec: a space is prepended; Gemma's spec { add_dummy_prefix: false }.
        assert!(add_dummy_prefix(&m));
        m.extend([0x1a, 0x02, 0x18, 0x00]);
        assert!(!add_dummy_prefix(&m));
    }
}
