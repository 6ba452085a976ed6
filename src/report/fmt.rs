//! Text helpers for the report: HTML escaping, number formatting, ranking.

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// `x` to three significant digits: fixed notation for 0.001 ≤ |x| < 100 000, scientific
/// otherwise; "–" for NaN and infinities (so no "NaN"/"inf" ever reaches the page).
pub fn sig(x: f64) -> String {
    if !x.is_finite() {
        return "–".to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    // Round to 3 significant digits first, so 9.996 becomes 10.0 rather than 10.00.
    let e = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(e - 2);
    let r = (x / scale).round() * scale;
    let e = r.abs().log10().floor() as i32;
    if (-3..5).contains(&e) {
        let decimals = (2 - e).max(0) as usize;
        format!("{r:.decimals$}")
    } else {
        let m = r / 10f64.powi(e);
        format!("{m:.2}e{e}")
    }
}

/// A parameter count as "494 M" / "1.24 B".
pub fn count(n: usize) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{} B", sig(x / 1e9))
    } else if x >= 1e6 {
        format!("{} M", sig(x / 1e6))
    } else if x >= 1e4 {
        format!("{} k", sig(x / 1e3))
    } else {
        n.to_string()
    }
}

/// Seconds as "12.3 s", or "4 min 05 s" from two minutes up.
pub fn seconds(s: f64) -> String {
    if s.is_finite() && s >= 120.0 {
        let total = s.round() as u64;
        format!("{} min {:02} s", total / 60, total % 60)
    } else {
        format!("{} s", sig(s))
    }
}

/// 1-based ranks of `values`, smallest first when `ascending`, largest first otherwise; ties
/// keep their original order and NaN ranks last either way.
pub fn ranks(values: &[f64], ascending: bool) -> Vec<usize> {
    let order = order(values, ascending);
    let mut rank = vec![0; values.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r + 1;
    }
    rank
}

/// Indices of `values` sorted smallest first (`ascending`) or largest first; NaN last.
pub fn order(values: &[f64], ascending: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (values[a], values[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if ascending => x.total_cmp(&y),
            _ => y.total_cmp(&x),
        }
    });
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_formats() {
        assert_eq!(sig(0.0), "0");
        assert_eq!(sig(1.0), "1.00");
        assert_eq!(sig(123.456), "123");
        assert_eq!(sig(1234.5), "1230");
        assert_eq!(sig(0.012345), "0.0123");
        assert_eq!(sig(9.996), "10.0");
        assert_eq!(sig(-0.5), "-0.500");
        assert_eq!(sig(1.234e-5), "1.23e-5");
        assert_eq!(sig(6.02e23), "6.02e23");
        assert_eq!(sig(f64::NAN), "–");
        assert_eq!(sig(f64::INFINITY), "–");
    }

    #[test]
    fn counts_and_ranks() {
        assert_eq!(count(494_032_768), "494 M");
        assert_eq!(count(1_240_000_000), "1.24 B");
        assert_eq!(count(12), "12");
        assert_eq!(seconds(12.345), "12.3 s");
        assert_eq!(seconds(245.0), "4 min 05 s");
        assert_eq!(ranks(&[0.3, 0.1, f64::NAN, 0.2], true), vec![3, 1, 4, 2]);
        assert_eq!(ranks(&[0.3, 0.1, f64::NAN, 0.2], false), vec![1, 3, 4, 2]);
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }
}
