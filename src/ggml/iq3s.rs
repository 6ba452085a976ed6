//! IQ3_S's grid (ggml's `block_iq3_s`, 3.4375 bits per weight): 256 weights in 8 sub-blocks of
//! 32, each with a 4-bit scale code (step d·(1 + 2·sc)); every group of 4 weights takes its
//! magnitudes (odd multiples 1…15 of the step) from one of 512 points, every weight its own sign.
//!
//! A weight's code is [`ODD_LEVELS`]' (sign and magnitude index m, value step·±(2m + 1)); the
//! codes of a group must be a point. Round to nearest takes each group's nearest magnitudes when
//! they are a point, else the best of their neighbours — every point within the three smallest
//! distances, as ggml's `iq3xs_init_impl` lists them. GPTQ rounds column by column, in any
//! order (act-order permutes them): a weight's magnitude is chosen among the points that agree
//! with the group's weights already rounded, scored on its own error-updated value and the
//! estimates of the group's weights not yet rounded.

use std::sync::OnceLock;

use super::grid::ODD_LEVELS;

/// Groups of 4 weights: one point each.
pub const GROUP: usize = 4;

/// ggml's `kgrid_512`: the points, a magnitude index (0…7, 3 bits) per weight, first weight lowest.
const KGRID: [u16; 512] = [
    0, 1, 2, 5, 7, 8, 9, 10, 12, 14, 16, 17, 21, 27, 32, 34,
    37, 39, 41, 43, 48, 50, 57, 60, 63, 64, 65, 66, 68, 72, 73, 77,
    80, 83, 87, 89, 93, 100, 113, 117, 122, 128, 129, 133, 135, 136, 139, 142,
    145, 149, 152, 156, 162, 165, 167, 169, 171, 184, 187, 195, 201, 205, 208, 210,
    217, 219, 222, 228, 232, 234, 247, 249, 253, 256, 267, 271, 273, 276, 282, 288,
    291, 297, 312, 322, 324, 336, 338, 342, 347, 353, 357, 359, 374, 379, 390, 393,
    395, 409, 426, 441, 448, 450, 452, 464, 466, 470, 475, 488, 492, 512, 513, 514,
    516, 520, 521, 523, 525, 527, 528, 530, 537, 540, 542, 556, 558, 561, 570, 576,
    577, 579, 582, 584, 588, 593, 600, 603, 609, 616, 618, 632, 638, 640, 650, 653,
    655, 656, 660, 666, 672, 675, 685, 688, 698, 705, 708, 711, 712, 715, 721, 727,
    728, 732, 737, 754, 760, 771, 773, 778, 780, 793, 795, 802, 806, 808, 812, 833,
    840, 843, 849, 856, 858, 873, 912, 916, 919, 932, 934, 961, 963, 968, 970, 977,
    989, 993, 1010, 1016, 1024, 1025, 1027, 1029, 1031, 1032, 1034, 1036, 1038, 1041, 1043, 1047,
    1048, 1050, 1057, 1059, 1061, 1064, 1066, 1079, 1080, 1083, 1085, 1088, 1090, 1096, 1099, 1103,
    1106, 1109, 1113, 1116, 1122, 1129, 1153, 1156, 1159, 1169, 1171, 1176, 1183, 1185, 1195, 1199,
    1209, 1212, 1216, 1218, 1221, 1225, 1234, 1236, 1241, 1243, 1250, 1256, 1270, 1281, 1287, 1296,
    1299, 1306, 1309, 1313, 1338, 1341, 1348, 1353, 1362, 1375, 1376, 1387, 1400, 1408, 1410, 1415,
    1425, 1453, 1457, 1477, 1481, 1494, 1496, 1507, 1512, 1538, 1545, 1547, 1549, 1551, 1554, 1561,
    1563, 1565, 1570, 1572, 1575, 1577, 1587, 1593, 1601, 1603, 1605, 1612, 1617, 1619, 1632, 1648,
    1658, 1662, 1664, 1674, 1680, 1690, 1692, 1704, 1729, 1736, 1740, 1745, 1747, 1751, 1752, 1761,
    1763, 1767, 1773, 1787, 1795, 1801, 1806, 1810, 1817, 1834, 1840, 1844, 1857, 1864, 1866, 1877,
    1882, 1892, 1902, 1915, 1934, 1953, 1985, 1987, 2000, 2002, 2013, 2048, 2052, 2058, 2064, 2068,
    2071, 2074, 2081, 2088, 2104, 2114, 2119, 2121, 2123, 2130, 2136, 2141, 2147, 2153, 2157, 2177,
    2179, 2184, 2189, 2193, 2203, 2208, 2223, 2226, 2232, 2244, 2249, 2251, 2256, 2258, 2265, 2269,
    2304, 2306, 2324, 2335, 2336, 2361, 2373, 2375, 2385, 2418, 2443, 2460, 2480, 2504, 2509, 2520,
    2531, 2537, 2562, 2568, 2572, 2578, 2592, 2596, 2599, 2602, 2614, 2620, 2625, 2627, 2629, 2634,
    2641, 2650, 2682, 2688, 2697, 2707, 2712, 2718, 2731, 2754, 2759, 2760, 2775, 2788, 2793, 2805,
    2811, 2817, 2820, 2832, 2842, 2854, 2890, 2902, 2921, 2923, 2978, 3010, 3012, 3026, 3081, 3083,
    3085, 3097, 3099, 3120, 3136, 3152, 3159, 3188, 3210, 3228, 3234, 3245, 3250, 3256, 3264, 3276,
    3281, 3296, 3349, 3363, 3378, 3392, 3395, 3420, 3440, 3461, 3488, 3529, 3531, 3584, 3588, 3591,
    3600, 3602, 3614, 3616, 3628, 3634, 3650, 3657, 3668, 3683, 3685, 3713, 3716, 3720, 3726, 3729,
    3736, 3753, 3778, 3802, 3805, 3819, 3841, 3845, 3851, 3856, 3880, 3922, 3938, 3970, 3993, 4032,];

/// Patterns of 4 magnitude indices: 8⁴.
const PATTERNS: usize = 4096;

struct Tables {
    /// Each point's magnitude indices.
    points: [[u8; GROUP]; 512],
    /// Per pattern, its point (or −1).
    index: Vec<i16>,
    /// Per pattern off the grid, its candidate points.
    neighbours: Vec<Vec<u16>>,
    /// Per set of known positions (a 4-bit mask) and their magnitudes (the pattern's bits at
    /// those positions), the points that agree.
    by_known: Vec<Vec<Vec<u16>>>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut points = [[0u8; GROUP]; 512];
        let mut index = vec![-1i16; PATTERNS];
        for (k, &g) in KGRID.iter().enumerate() {
            for (i, m) in points[k].iter_mut().enumerate() {
                *m = ((g >> (3 * i)) & 7) as u8;
            }
            index[g as usize] = k as i16;
        }
        let neighbours = (0..PATTERNS)
            .map(|u| {
                if index[u] >= 0 {
                    return Vec::new();
                }
                let at: Vec<i32> = (0..GROUP).map(|i| 2 * ((u >> (3 * i)) & 7) as i32 + 1).collect();
                let mut d2: Vec<(i32, u16)> = points
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (p.iter().zip(&at).map(|(&m, &a)| (2 * m as i32 + 1 - a).pow(2)).sum(), k as u16))
                    .collect();
                d2.sort_unstable();
                let mut distinct = 0;
                let mut last = -1;
                d2.into_iter()
                    .take_while(|&(d, _)| {
                        if d != last {
                            distinct += 1;
                            last = d;
                        }
                        distinct <= 3
                    })
                    .map(|(_, k)| k)
                    .collect()
            })
            .collect();
        let by_known = (0..1usize << GROUP)
            .map(|mask| {
                let mut lists = vec![Vec::new(); PATTERNS];
                for (k, &g) in KGRID.iter().enumerate() {
                    lists[g as usize & bits(mask)].push(k as u16);
                }
                lists
            })
            .collect();
        Tables { points, index, neighbours, by_known }
    })
}

/// The pattern bits of the positions in `mask`.
fn bits(mask: usize) -> usize {
    (0..GROUP).filter(|i| mask >> i & 1 == 1).fold(0, |a, i| a | 7 << (3 * i))
}

/// The pattern of magnitude indices `m` (first lowest).
fn pattern(m: &[u8]) -> usize {
    m.iter().enumerate().fold(0, |a, (i, &v)| a | (v as usize) << (3 * i))
}

/// Σ w (|x| − s·(2m + 1))² over the positions given.
#[inline]
fn error(xa: &[f32], w: &[f32], s: f32, m: &[u8]) -> f32 {
    xa.iter().zip(w).zip(m).map(|((&x, &w), &m)| w * (x - s * (2 * m + 1) as f32).powi(2)).sum()
}

/// The magnitude index nearest |x|/s.
#[inline]
fn nearest(xa: f32, s: f32) -> u8 {
    super::grid::round_half_even(0.5 * (xa / s - 1.0)).clamp(0.0, 7.0) as u8
}

/// The point for one group of magnitudes `xa` (|x|) with weights `w` at step `s` > 0.
pub fn best_point(xa: &[f32], w: &[f32], s: f32) -> usize {
    let t = tables();
    let m: [u8; GROUP] = std::array::from_fn(|i| nearest(xa[i], s));
    let u = pattern(&m);
    if t.index[u] >= 0 {
        return t.index[u] as usize;
    }
    let mut best = (f32::INFINITY, 0usize);
    for &k in &t.neighbours[u] {
        let e = error(xa, w, s, &t.points[k as usize]);
        if e < best.0 {
            best = (e, k as usize);
        }
    }
    best.1
}

/// The magnitude index of position `p` of a group whose positions in `known` (a bit mask, p not
/// among them) took the magnitudes `m` has there: the point that agrees with them and best fits
/// `xa`/`w` at the other positions (this one's value and estimates of the rest).
pub fn constrained_magnitude(known: usize, m: &[u8; GROUP], xa: &[f32; GROUP], w: &[f32; GROUP], p: usize, s: f32) -> u8 {
    let t = tables();
    if known == 0 {
        return t.points[best_point(xa, w, s)][p];
    }
    let mut best = (f32::INFINITY, 0u8);
    for &k in &t.by_known[known][pattern(m) & bits(known)] {
        let pt = &t.points[k as usize];
        let e: f32 = (0..GROUP).filter(|i| known >> i & 1 == 0).map(|i| w[i] * (xa[i] - s * (2 * pt[i] + 1) as f32).powi(2)).sum();
        if e < best.0 {
            best = (e, pt[p]);
        }
    }
    best.1
}

/// The code of a weight `x` with magnitude index `m`: its sign (x ≥ 0 positive, as ggml) and m.
#[inline]
pub fn code(x: f32, m: u8) -> u8 {
    if x >= 0.0 { 8 + m } else { 7 - m }
}

/// The magnitude index and sign (true: negative) of a code.
#[inline]
pub fn magnitude(c: u8) -> (u8, bool) {
    if c >= 8 { (c - 8, false) } else { (7 - c, true) }
}

/// Codes of one sub-block `x` (weights `w`) at step `s`, by round to nearest point per group.
pub fn round_sub_block(x: &[f32], w: &[f32], s: f32, codes: &mut [u8]) {
    let t = tables();
    for ((x, w), c) in x.chunks(GROUP).zip(w.chunks(GROUP)).zip(codes.chunks_mut(GROUP)) {
        let xa: [f32; GROUP] = std::array::from_fn(|i| x[i].abs());
        let pt = if s > 0.0 { t.points[best_point(&xa, w, s)] } else { [0; GROUP] };
        for i in 0..GROUP {
            c[i] = code(x[i], pt[i]);
        }
    }
}

/// Weighted error of sub-block `x` rounded at step `s`.
pub fn sub_error(x: &[f32], w: &[f32], s: f32) -> f32 {
    let mut c = [0u8; 32];
    let c = &mut c[..x.len()];
    round_sub_block(x, w, s, c);
    x.iter().zip(w).zip(&*c).map(|((&x, &w), &c)| w * (x - s * ODD_LEVELS[c as usize] as f32).powi(2)).sum()
}

/// The step of one sub-block (ggml's search): candidates mapping max|x| near the top magnitude
/// 15, each scored by its least-squares step over the points it rounds to; the best is
/// rounded again and refitted once.
pub fn fit_step(x: &[f32], w: &[f32]) -> f32 {
    let t = tables();
    let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let max = xa.iter().copied().fold(0f32, f32::max);
    if max == 0.0 {
        return 0.0;
    }
    let refit = |s: f32| -> (f32, f32) {
        let (mut sqx, mut sqq) = (0f32, 0f32);
        for (xa, w) in xa.chunks(GROUP).zip(w.chunks(GROUP)) {
            let pt = &t.points[best_point(xa, w, s)];
            for i in 0..GROUP {
                let q = (2 * pt[i] + 1) as f32;
                sqx += w[i] * xa[i] * q;
                sqq += w[i] * q * q;
            }
        }
        (sqx, sqq)
    };
    let (mut best, mut step) = (0f32, max / 15.0);
    for k in -9..=9 {
        let (sqx, sqq) = refit(max / (15.0 + 0.2 * k as f32));
        if sqq > 0.0 && sqx * sqx > best * sqq {
            step = sqx / sqq;
            best = step * sqx;
        }
    }
    let (sqx, sqq) = refit(step);
    if sqq > 0.0 && sqx > 0.0 { sqx / sqq } else { step }
}

/// The point index of a group's codes (which must be a point).
pub fn point_of(codes: &[u8]) -> u16 {
    let m: [u8; GROUP] = std::array::from_fn(|i| magnitude(codes[i]).0);
    let k = tables().index[pattern(&m)];
    assert!(k >= 0, "IQ3_S codes {m:?} are not a point of the grid");
    k as u16
}

/// The magnitude indices of point `k`.
pub fn point(k: usize) -> [u8; GROUP] {
    tables().points[k]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_ggmls() {
        let t = tables();
        assert_eq!(t.index.iter().filter(|&&k| k >= 0).count(), 512);
        // Every pattern off the grid has neighbours, all points.
        for u in 0..PATTERNS {
            assert_eq!(t.neighbours[u].is_empty(), t.index[u] >= 0, "pattern {u}");
        }
        // ggml's iq3s_grid[1] = 0x01010103: magnitudes 1, 0, 0, 0.
        assert_eq!(t.points[1], [1, 0, 0, 0]);
        assert_eq!(t.by_known[0][0].len(), 512);
        for mask in 0..16 {
            assert_eq!(t.by_known[mask].iter().map(Vec::len).sum::<usize>(), 512);
        }
    }

    #[test]
    fn points_on_the_grid_round_to_themselves() {
        let s = 0.01f32;
        for k in [0usize, 1, 77, 300, 511] {
            let m = point(k);
            let x: Vec<f32> = m.iter().enumerate().map(|(i, &m)| if i % 2 == 0 { 1.0 } else { -1.0 } * s * (2 * m + 1) as f32).collect();
            let mut c = [0u8; 4];
            round_sub_block(&x, &[1.0; 4], s, &mut c);
            assert_eq!(point_of(&c) as usize, k);
            for i in 0..4 {
                assert_eq!(s * ODD_LEVELS[c[i] as usize] as f32, x[i]);
            }
        }
    }

    #[test]
    fn constrained_choices_stay_on_the_grid_in_any_order() {
        let mut rng = crate::stats::Rng::new(3);
        for trial in 0..2000 {
            let xa: [f32; 4] = std::array::from_fn(|_| rng.uniform() as f32 * 16.0);
            let w = [1.0f32; 4];
            let order = [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]][trial % 3];
            let (mut known, mut m) = (0usize, [0u8; 4]);
            for p in order {
                m[p] = constrained_magnitude(known, &m, &xa, &w, p, 1.0);
                known |= 1 << p;
            }
            let codes: Vec<u8> = m.iter().map(|&m| code(1.0, m)).collect();
            point_of(&codes);
        }
    }
}
