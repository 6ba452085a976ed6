//! Mutations of valid files, driven by the seeded [`Rng`] of `stats`: byte-level damage everywhere, and structure-aware damage where the
//! layout is known (GGUF and `.dat` length fields and value types, the safetensors header,
//! JSON values and keys).

use serde_json::Value as Json;

pub use crate::stats::Rng;

/// A uniformly chosen element of `xs` (not empty).
fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.below(xs.len())]
}

/// How a file is laid out, for structure-aware mutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Gguf,
    ImatrixDat,
    Safetensors,
    Json,
    /// No known structure: byte-level damage only.
    Raw,
}

/// Integers that break length fields: zero, one, sign bits, −1, 2^31, 2^32, 2^63, u64::MAX.
const HUGE: [u64; 10] =
    [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 1 << 40, 0x7fff_ffff_ffff_ffff, 1 << 63, u64::MAX];

/// An integer field of a binary file: its offset and width in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub at: usize,
    pub width: usize,
    /// Whether the field holds a GGUF value type (then wrong types are written into it).
    pub value_type: bool,
}

/// A seed file with what is known of its structure.
#[derive(Debug, Clone)]
pub struct Seed {
    pub name: String,
    pub bytes: Vec<u8>,
    pub layout: Layout,
    /// Integer fields (GGUF, `.dat`): where huge counts, negative sizes and wrong types are written.
    pub fields: Vec<Field>,
    /// Byte ranges of GGUF key/value pairs: duplicated to make duplicated keys.
    pub records: Vec<(usize, usize)>,
}

impl Seed {
    pub fn new(name: &str, bytes: Vec<u8>, layout: Layout) -> Seed {
        let (fields, records) = match layout {
            Layout::Gguf => gguf_fields(&bytes),
            Layout::ImatrixDat => (dat_fields(&bytes), Vec::new()),
            Layout::Safetensors => (vec![Field { at: 0, width: 8, value_type: false }], Vec::new()),
            Layout::Json | Layout::Raw => (Vec::new(), Vec::new()),
        };
        Seed { name: name.to_string(), bytes, layout, fields, records }
    }

    /// The bytes of the header: where mutations matter most (everything for JSON and `.dat`).
    fn header_len(&self) -> usize {
        let end = match self.layout {
            Layout::Gguf => self.fields.iter().map(|f| f.at + f.width).max().unwrap_or(0) + 32,
            Layout::Safetensors => {
                8 + self.bytes.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            }
            _ => self.bytes.len(),
        };
        end.clamp(1, self.bytes.len().max(1))
    }
}

/// One to three mutations of `seed`, chosen by `rng`.
pub fn mutate(seed: &Seed, rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.bytes.clone();
    for _ in 0..1 + rng.below(3) {
        let structured = match seed.layout {
            Layout::Json => rng.below(2) == 0 && json_mutation(&mut b, rng),
            Layout::Safetensors => rng.below(2) == 0 && safetensors_mutation(&mut b, rng),
            Layout::Gguf | Layout::ImatrixDat => rng.below(2) == 0 && field_mutation(seed, &mut b, rng),
            Layout::Raw => false,
        };
        if !structured {
            byte_mutation(&mut b, seed.header_len(), rng);
        }
    }
    b
}

/// One to three overwrites of what `seed` holds rather than how it is laid out: bytes after a
/// GGUF header (its tensors' data) flipped or overwritten, or a digit of a JSON file's numbers
/// changed to another — damage that leaves the layout valid, which only a checksum can tell.
pub fn damage_payload(seed: &Seed, rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.bytes.clone();
    for _ in 0..1 + rng.below(3) {
        if seed.layout == Layout::Json {
            let digits: Vec<usize> = b.iter().enumerate().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
            if let Some(&at) = (!digits.is_empty()).then(|| pick(rng, &digits)) {
                b[at] = b'0' + ((b[at] - b'0') as usize + 1 + rng.below(9)) as u8 % 10;
            }
            continue;
        }
        let start = seed.header_len().min(b.len());
        if start == b.len() {
            break;
        }
        let at = start + rng.below(b.len() - start);
        if rng.below(2) == 0 {
            b[at] ^= 1 << rng.below(8);
        } else {
            let n = (1 + rng.below(8)).min(b.len() - at);
            for x in &mut b[at..at + n] {
                *x = rng.next_u64() as u8;
            }
        }
    }
    b
}

/// [`mutate`] or [`damage_payload`], one case in two each.
pub fn mutate_or_damage(seed: &Seed, rng: &mut Rng) -> Vec<u8> {
    if rng.below(2) == 0 {
        mutate(seed, rng)
    } else {
        damage_payload(seed, rng)
    }
}

/// Bit flips, byte overwrites, truncation, insertion, deletion; positions fall in the header
/// three times out of four.
fn byte_mutation(b: &mut Vec<u8>, header: usize, rng: &mut Rng) {
    if b.is_empty() {
        b.push(rng.next_u64() as u8);
        return;
    }
    let span = if rng.below(4) > 0 { header.min(b.len()) } else { b.len() };
    let at = rng.below(span);
    match rng.below(6) {
        0 => b[at] ^= 1 << rng.below(8),
        1 => {
            let random = rng.next_u64() as u8;
            b[at] = *pick(rng, &[0u8, 0xff, 0x7f, 0x80, 0x01, random]);
        }
        2 => b.truncate(at),
        3 => {
            let n = 1 + rng.below(16);
            let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            b.splice(at..at, junk);
        }
        4 => {
            let end = (at + 1 + rng.below(64)).min(b.len());
            b.drain(at..end);
        }
        _ => {
            let n = (1 + rng.below(8)).min(b.len() - at);
            for x in &mut b[at..at + n] {
                *x = rng.next_u64() as u8;
            }
        }
    }
}

/// A huge or negative number written into a length or count field, a wrong GGUF value type, or
/// a key/value pair duplicated.
fn field_mutation(seed: &Seed, b: &mut Vec<u8>, rng: &mut Rng) -> bool {
    if !seed.records.is_empty() && rng.below(5) == 0 {
        return duplicate_record(seed, b, rng);
    }
    let Some(&f) = (!seed.fields.is_empty()).then(|| pick(rng, &seed.fields)) else { return false };
    if f.at + f.width > b.len() {
        return false;
    }
    let value = if f.value_type {
        rng.below(16) as u64
    } else {
        match rng.below(3) {
            0 => *pick(rng, &HUGE),
            1 => seed.bytes.len() as u64 + rng.below(3) as u64 - 1,
            _ => read_le(&b[f.at..f.at + f.width]).wrapping_add(rng.below(5) as u64).wrapping_sub(2),
        }
    };
    b[f.at..f.at + f.width].copy_from_slice(&value.to_le_bytes()[..f.width]);
    true
}

/// Copies one GGUF key/value pair right after itself and counts it in the header.
fn duplicate_record(seed: &Seed, b: &mut Vec<u8>, rng: &mut Rng) -> bool {
    let (start, end) = *pick(rng, &seed.records);
    if end > b.len() || b.len() < 24 {
        return false;
    }
    let copy = b[start..end].to_vec();
    b.splice(end..end, copy);
    let n_kv = read_le(&b[16..24]).wrapping_add(1);
    b[16..24].copy_from_slice(&n_kv.to_le_bytes());
    true
}

fn read_le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64)
}

/// The safetensors header (JSON) mutated as JSON, written back with its new length — or with
/// the old one, so that the length and the header disagree.
fn safetensors_mutation(b: &mut Vec<u8>, rng: &mut Rng) -> bool {
    let Some(n) = b.get(..8).map(|x| read_le(x) as usize) else { return false };
    let Some(header) = b.get(8..8usize.saturating_add(n)) else { return false };
    let mut header = header.to_vec();
    if !json_mutation(&mut header, rng) {
        return false;
    }
    let len = if rng.below(4) == 0 { n } else { header.len() };
    let data = b[8 + n..].to_vec();
    *b = [&(len as u64).to_le_bytes()[..], &header, &data].concat();
    true
}

/// Replaces a random JSON value with one of the wrong type or an extreme number, removes a key,
/// or writes a key twice. False when the text is no longer JSON (earlier damage).
fn json_mutation(b: &mut Vec<u8>, rng: &mut Rng) -> bool {
    if rng.below(4) == 0 {
        return duplicate_json_key(b, rng);
    }
    let Ok(mut v) = serde_json::from_slice::<Json>(b) else { return false };
    let mut nodes = 0;
    count_nodes(&v, &mut nodes);
    let target = rng.below(nodes);
    let remove = rng.below(4) == 0;
    let replacement = wrong_value(rng);
    let mut k = 0;
    edit_node(&mut v, target, &mut k, &mut |node| {
        match (remove, node) {
            (true, Json::Object(o)) if !o.is_empty() => {
                let key = o.keys().next().cloned().expect("not empty");
                o.remove(&key);
            }
            (true, Json::Array(a)) if !a.is_empty() => {
                a.pop();
            }
            (_, node) => *node = replacement.clone(),
        };
    });
    *b = serde_json::to_vec(&v).expect("a JSON value serialises");
    true
}

fn count_nodes(v: &Json, n: &mut usize) {
    *n += 1;
    match v {
        Json::Object(o) => o.values().for_each(|x| count_nodes(x, n)),
        Json::Array(a) => a.iter().for_each(|x| count_nodes(x, n)),
        _ => {}
    }
}

/// Applies `f` to the `target`-th node in pre-order (`k` counts the nodes visited).
fn edit_node(v: &mut Json, target: usize, k: &mut usize, f: &mut dyn FnMut(&mut Json)) {
    if *k == target {
        f(v);
        *k += 1;
        return;
    }
    *k += 1;
    match v {
        Json::Object(o) => o.values_mut().for_each(|x| edit_node(x, target, k, f)),
        Json::Array(a) => a.iter_mut().for_each(|x| edit_node(x, target, k, f)),
        _ => {}
    }
}

fn wrong_value(rng: &mut Rng) -> Json {
    match rng.below(12) {
        0 => Json::Null,
        1 => Json::Bool(true),
        2 => Json::from(-1),
        3 => Json::from(0),
        4 => Json::from(u64::MAX),
        5 => Json::from(1e308),
        6 => Json::from(-1e308),
        7 => Json::from(0.5),
        8 => Json::from("x"),
        9 => Json::Array(vec![Json::from(1), Json::from("a")]),
        10 => Json::Object(Default::default()),
        _ => Json::from(*pick(rng, &HUGE)),
    }
}

/// Writes one key of the text a second time, just before itself, with a small value.
fn duplicate_json_key(b: &mut Vec<u8>, rng: &mut Rng) -> bool {
    let keys: Vec<usize> = b.windows(2).enumerate().filter(|(_, w)| w == b"\":").map(|(i, _)| i).collect();
    if keys.is_empty() {
        return false;
    }
    let end = *pick(rng, &keys);
    let Some(start) = b[..end].iter().rposition(|&c| c == b'"') else { return false };
    let mut dup = b[start..end + 2].to_vec();
    dup.extend_from_slice(if rng.below(2) == 0 { b"0," } else { b"\"x\"," });
    b.splice(start..start, dup);
    true
}

/// A forward-only reader over a valid file, noting where each integer field lies.
struct Walk<'a> {
    b: &'a [u8],
    at: usize,
    fields: Vec<Field>,
}

impl Walk<'_> {
    fn int(&mut self, width: usize, value_type: bool) -> Option<u64> {
        let x = read_le(self.b.get(self.at..self.at + width)?);
        self.fields.push(Field { at: self.at, width, value_type });
        self.at += width;
        Some(x)
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        self.at = self.at.checked_add(usize::try_from(n).ok()?).filter(|&e| e <= self.b.len())?;
        Some(())
    }

    fn gguf_value(&mut self, vtype: u64) -> Option<()> {
        match vtype {
            0 | 1 | 7 => self.skip(1),
            2 | 3 => self.skip(2),
            4..=6 => self.skip(4),
            8 => {
                let n = self.int(8, false)?;
                self.skip(n)
            }
            9 => {
                let et = self.int(4, true)?;
                let n = self.int(8, false)?;
                (0..n).try_for_each(|_| self.gguf_value(et))
            }
            10..=12 => self.skip(8),
            _ => None,
        }
    }
}

/// The integer fields and key/value records of a valid GGUF file.
fn gguf_fields(b: &[u8]) -> (Vec<Field>, Vec<(usize, usize)>) {
    let mut w = Walk { b, at: 4, fields: Vec::new() };
    let mut records = Vec::new();
    let _ = (|| -> Option<()> {
        w.int(4, false)?;
        let n_tensors = w.int(8, false)?;
        let n_kv = w.int(8, false)?;
        for _ in 0..n_kv {
            let start = w.at;
            let n = w.int(8, false)?;
            w.skip(n)?;
            let vtype = w.int(4, true)?;
            // Scalar integers (block_count, head counts, …) take huge and negative values too.
            let width = match vtype {
                0 | 1 => 1,
                2 | 3 => 2,
                4 | 5 => 4,
                10 | 11 => 8,
                _ => 0,
            };
            if width > 0 {
                w.fields.push(Field { at: w.at, width, value_type: false });
            }
            w.gguf_value(vtype)?;
            records.push((start, w.at));
        }
        for _ in 0..n_tensors {
            let n = w.int(8, false)?;
            w.skip(n)?;
            let dims = w.int(4, false)?;
            (0..dims).try_for_each(|_| w.int(8, false).map(drop))?;
            w.int(4, false)?;
            w.int(8, false)?;
        }
        Some(())
    })();
    (w.fields, records)
}

/// The integer fields of a valid legacy `.dat` imatrix.
fn dat_fields(b: &[u8]) -> Vec<Field> {
    let mut w = Walk { b, at: 0, fields: Vec::new() };
    let _ = (|| -> Option<()> {
        let n = w.int(4, false)?;
        for _ in 0..n {
            let len = w.int(4, false)?;
            w.skip(len)?;
            w.int(4, false)?;
            let nval = w.int(4, false)?;
            w.skip(4 * nval)?;
        }
        w.int(4, false)?;
        w.int(4, false)?;
        Some(())
    })();
    w.fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let seed = Seed::new("j", br#"{"a": [1, 2, {"b": "c"}], "d": 4}"#.to_vec(), Layout::Json);
        let run = |s: u64| (0..50).map(|i| mutate(&seed, &mut Rng::new(s + i))).collect::<Vec<_>>();
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().any(|m| m != &seed.bytes));
    }

    /// Payload damage leaves a GGUF file's header alone and a JSON file's text the same length.
    #[test]
    fn payload_damage_spares_the_header() {
        let mut gguf = Vec::new();
        crate::model::gguf_file::write(
            &mut gguf,
            &[("a".to_string(), crate::model::gguf_file::Value::U32(7))],
            &[crate::model::gguf_file::OutTensor {
                name: "t".into(),
                ne: vec![64],
                qtype: crate::ggml::types::QuantType::F32,
                data: vec![0u8; 256].into(),
            }],
        )
        .unwrap();
        let seed = Seed::new("g", gguf, Layout::Gguf);
        let json = Seed::new("j", br#"{"a": 0.125, "b": [1, 2]}"#.to_vec(), Layout::Json);
        let mut changed = 0;
        for i in 0..50 {
            let b = damage_payload(&seed, &mut Rng::new(i));
            assert_eq!(b.len(), seed.bytes.len());
            let header = seed.header_len();
            assert_eq!(b[..header], seed.bytes[..header]);
            let j = damage_payload(&json, &mut Rng::new(i));
            assert_eq!(j.len(), json.bytes.len());
            assert!(serde_json::from_slice::<Json>(&j).is_ok());
            changed += (b != seed.bytes && j != json.bytes) as usize;
        }
        assert!(changed > 40, "{changed} of 50 damaged");
    }

    #[test]
    fn dat_fields_are_found() {
        let mut b = Vec::new();
        for x in [1i32, 3] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(b"abc");
        for x in [1i32, 1, 0, 0] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&[0; 4]);
        let at: Vec<usize> = dat_fields(&b).iter().map(|f| f.at).collect();
        assert_eq!(at, vec![0, 4, 11, 15, 23, 27]);
    }
}
