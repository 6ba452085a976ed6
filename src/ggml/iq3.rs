//! ggml's 3-bit vector grids, one description for both types: IQ3_S (`block_iq3_s`, 3.4375 bits
//! per weight: 512 points, every weight its own sign) and IQ3_XXS (`block_iq3_xxs`, 3.0625 bits
//! per weight: 256 points, 7 stored signs per 8 weights). A block holds 256 weights in 8
//! sub-blocks of 32, each with a 4-bit scale code (step d·(1 + 2·sc)); every group of 4 weights
//! takes its magnitudes from one point of the grid.
//!
//! A weight's code is a sign and a magnitude index m (code 8 + m, or 7 − m when negative). The
//! functions here work on the odd lattice's step s: magnitude index m stands for s·level(m), with
//! level(m) = 2m + 1, except IQ3_XXS's top level, which ggml's `iq3xxs_grid` stores as 62 = 4·15.5
//! (the block's [`Grid`](super::grid::Grid) steps are s/[`Iq3Grid::unit`], its levels the grid's
//! bytes, [`ODD_LEVELS`](super::grid::ODD_LEVELS) or [`IQ3XXS_LEVELS`](super::grid::IQ3XXS_LEVELS)).
//!
//! Round to nearest takes each group's nearest magnitudes on the odd lattice when they are a
//! point, else the best of their neighbours — every point within the smallest distances (three
//! for IQ3_S, two for IQ3_XXS), as ggml's `iq3xs_init_impl` lists them; errors and fits use the
//! levels the decoder gives. GPTQ rounds column by column, in any order (act-order permutes
//! them): a weight's magnitude is chosen among the points that agree with the group's weights
//! already rounded, scored on its own error-updated value and the estimates of the group's
//! weights not yet rounded.
//!
//! IQ3_XXS's signs: the eighth sign of every group of 8 is the parity of the other seven, so
//! the count of negatives is even. Round to nearest gives every weight its own sign, then, in a
//! group of 8 with an odd count, flips the one weight whose flip costs least: each candidate's
//! group of 4 is rounded again with that weight's target negated, and the smallest rise in
//! weighted error wins. The step search first negates, as ggml does, the weight of least w·x² in
//! such a group. (GPTQ's rule, which cannot go back on a rounded weight, is in
//! `compress/grid_columns.rs`.)

use std::sync::OnceLock;

use super::grid::{Lut, IQ3XXS_LEVELS, ODD_LEVELS};
use super::types::QuantType;

/// Groups of 4 weights: one point each.
pub const GROUP: usize = 4;

/// IQ3_XXS: groups of 8 weights share a sign parity.
pub const OCTET: usize = 8;

/// ggml's `kgrid_512` (IQ3_S's points): a magnitude index (0…7, 3 bits) per weight, first weight lowest.
const KGRID_512: [u16; 512] = [
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
/// ggml's `kgrid_256` (IQ3_XXS's points), in the same layout.
const KGRID_256: [u16; 256] = [
    0, 2, 4, 9, 11, 15, 16, 18, 25, 34, 59, 61, 65, 67, 72, 74,
    81, 85, 88, 90, 97, 108, 120, 128, 130, 132, 137, 144, 146, 153, 155, 159,
    169, 175, 189, 193, 199, 200, 202, 213, 248, 267, 287, 292, 303, 315, 317, 321,
    327, 346, 362, 413, 436, 456, 460, 462, 483, 497, 513, 515, 520, 522, 529, 531,
    536, 538, 540, 551, 552, 576, 578, 585, 592, 594, 641, 643, 648, 650, 657, 664,
    698, 704, 706, 720, 729, 742, 758, 769, 773, 808, 848, 852, 870, 889, 901, 978,
    992, 1024, 1026, 1033, 1035, 1040, 1042, 1046, 1049, 1058, 1089, 1091, 1093, 1096, 1098, 1105,
    1112, 1139, 1143, 1144, 1152, 1154, 1161, 1167, 1168, 1170, 1183, 1184, 1197, 1217, 1224, 1228,
    1272, 1276, 1309, 1323, 1347, 1367, 1377, 1404, 1473, 1475, 1486, 1509, 1537, 1544, 1546, 1553,
    1555, 1576, 1589, 1594, 1600, 1602, 1616, 1625, 1636, 1638, 1665, 1667, 1672, 1685, 1706, 1722,
    1737, 1755, 1816, 1831, 1850, 1856, 1862, 1874, 1901, 1932, 1950, 1971, 2011, 2032, 2052, 2063,
    2077, 2079, 2091, 2095, 2172, 2192, 2207, 2208, 2224, 2230, 2247, 2277, 2308, 2345, 2356, 2389,
    2403, 2424, 2501, 2504, 2506, 2520, 2570, 2593, 2616, 2624, 2630, 2646, 2669, 2700, 2714, 2746,
    2754, 2795, 2824, 2835, 2839, 2874, 2882, 2905, 2984, 3028, 3042, 3092, 3108, 3110, 3124, 3153,
    3185, 3215, 3252, 3288, 3294, 3364, 3397, 3434, 3483, 3523, 3537, 3587, 3589, 3591, 3592, 3610,
    3626, 3670, 3680, 3722, 3749, 3754, 3776, 3789, 3803, 3824, 3857, 3873, 3904, 3906, 3924, 3992,
];


/// Patterns of 4 magnitude indices: 8⁴.
const PATTERNS: usize = 4096;

/// One of ggml's 3-bit grids and how its blocks store signs.
pub struct Iq3Grid {
    /// The GGUF type, for messages.
    name: &'static str,
    kgrid: &'static [u16],
    /// How many distinct distances an off-grid pattern's neighbour list spans (ggml's `nwant`).
    shells: usize,
    /// The block's levels: the grid's bytes with a sign, code 8 + m for magnitude index m.
    pub lut: Lut,
    /// LUT units per odd-lattice unit: a grid step is s / unit.
    pub unit: f32,
    /// Groups of 8 weights have an even count of negatives (IQ3_XXS).
    pub even_signs: bool,
    /// The step search's candidates map max|x| to 15 + 0.2k, |k| ≤ this (ggml's range).
    search: i32,
    tables: OnceLock<Tables>,
}

pub static IQ3S: Iq3Grid = Iq3Grid { name: "IQ3_S", kgrid: &KGRID_512, shells: 3, lut: &ODD_LEVELS, unit: 1.0, even_signs: false, search: 9, tables: OnceLock::new() };

pub static IQ3XXS: Iq3Grid = Iq3Grid { name: "IQ3_XXS", kgrid: &KGRID_256, shells: 2, lut: &IQ3XXS_LEVELS, unit: 4.0, even_signs: true, search: 15, tables: OnceLock::new() };

/// The grid of a GGUF type, if it has one of these.
pub fn of(t: QuantType) -> Option<&'static Iq3Grid> {
    match t {
        QuantType::IQ3S => Some(&IQ3S),
        QuantType::IQ3XXS => Some(&IQ3XXS),
        _ => None,
    }
}

struct Tables {
    /// Each point's magnitude indices.
    points: Vec<[u8; GROUP]>,
    /// Per pattern, its point (or −1).
    index: Vec<i16>,
    /// Per pattern off the grid, its candidate points.
    neighbours: Vec<Vec<u16>>,
    /// Per set of known positions (a 4-bit mask) and their magnitudes (the pattern's bits at
    /// those positions), the points that agree.
    by_known: Vec<Vec<Vec<u16>>>,
    /// Per magnitude index, its value in steps s.
    level: [f32; 8],
}

impl Tables {
    fn new(g: &Iq3Grid) -> Self {
        let mut points = vec![[0u8; GROUP]; g.kgrid.len()];
        let mut index = vec![-1i16; PATTERNS];
        for (k, &p) in g.kgrid.iter().enumerate() {
            for (i, m) in points[k].iter_mut().enumerate() {
                *m = ((p >> (3 * i)) & 7) as u8;
            }
            index[p as usize] = k as i16;
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
                        distinct <= g.shells
                    })
                    .map(|(_, k)| k)
                    .collect()
            })
            .collect();
        let by_known = (0..1usize << GROUP)
            .map(|mask| {
                let mut lists = vec![Vec::new(); PATTERNS];
                for (k, &p) in g.kgrid.iter().enumerate() {
                    lists[p as usize & bits(mask)].push(k as u16);
                }
                lists
            })
            .collect();
        let level = std::array::from_fn(|m| g.lut[8 + m] as f32 / g.unit);
        Tables { points, index, neighbours, by_known, level }
    }

    /// Σ w (x − s·level(m))² over the positions given (x may be negative: a flipped sign).
    #[inline]
    fn error(&self, xa: &[f32], w: &[f32], s: f32, m: &[u8]) -> f32 {
        xa.iter().zip(w).zip(m).map(|((&x, &w), &m)| w * (x - s * self.level[m as usize]).powi(2)).sum()
    }

    /// The value of code `c` at step `s`.
    #[inline]
    fn value(&self, c: u8, s: f32) -> f32 {
        let (m, negative) = magnitude(c);
        let v = s * self.level[m as usize];
        if negative { -v } else { v }
    }
}

/// The pattern bits of the positions in `mask`.
fn bits(mask: usize) -> usize {
    (0..GROUP).filter(|i| mask >> i & 1 == 1).fold(0, |a, i| a | 7 << (3 * i))
}

/// The pattern of magnitude indices `m` (first lowest).
fn pattern(m: &[u8]) -> usize {
    m.iter().enumerate().fold(0, |a, (i, &v)| a | (v as usize) << (3 * i))
}

/// The magnitude index nearest |x|/s on the odd lattice (ggml's choice for both grids).
#[inline]
fn nearest(xa: f32, s: f32) -> u8 {
    super::grid::round_half_even(0.5 * (xa / s - 1.0)).clamp(0.0, 7.0) as u8
}

/// The code of a weight `x` with magnitude index `m`: its sign (x ≥ 0 positive, as ggml) and m.
#[inline]
pub fn code(x: f32, m: u8) -> u8 {
    if x >= 0.0 { 8 + m } else { 7 - m }
}

/// The code of magnitude index `m` with the sign given.
#[inline]
pub fn signed_code(negative: bool, m: u8) -> u8 {
    if negative { 7 - m } else { 8 + m }
}

/// The magnitude index and sign (true: negative) of a code.
#[inline]
pub fn magnitude(c: u8) -> (u8, bool) {
    if c >= 8 { (c - 8, false) } else { (7 - c, true) }
}

impl Iq3Grid {
    fn tables(&self) -> &Tables {
        self.tables.get_or_init(|| Tables::new(self))
    }

    /// The value of magnitude index `m` in steps s.
    pub fn level(&self, m: u8) -> f32 {
        self.tables().level[m as usize]
    }

    /// The point for one group of targets `xa` (|x|; negative where a sign is flipped) with
    /// weights `w` at step `s` > 0.
    pub fn best_point(&self, xa: &[f32], w: &[f32], s: f32) -> usize {
        let t = self.tables();
        let m: [u8; GROUP] = std::array::from_fn(|i| nearest(xa[i], s));
        let u = pattern(&m);
        if t.index[u] >= 0 {
            return t.index[u] as usize;
        }
        let mut best = (f32::INFINITY, 0usize);
        for &k in &t.neighbours[u] {
            let e = t.error(xa, w, s, &t.points[k as usize]);
            if e < best.0 {
                best = (e, k as usize);
            }
        }
        best.1
    }

    /// The magnitude index of position `p` of a group whose positions in `known` (a bit mask, p
    /// not among them) took the magnitudes `m` has there: the point that agrees with them and
    /// best fits `xa`/`w` at the other positions (this one's target and estimates of the rest).
    pub fn constrained_magnitude(&self, known: usize, m: &[u8; GROUP], xa: &[f32; GROUP], w: &[f32; GROUP], p: usize, s: f32) -> u8 {
        let t = self.tables();
        if known == 0 {
            return t.points[self.best_point(xa, w, s)][p];
        }
        let mut best = (f32::INFINITY, 0u8);
        for &k in &t.by_known[known][pattern(m) & bits(known)] {
            let pt = &t.points[k as usize];
            let e: f32 = (0..GROUP).filter(|i| known >> i & 1 == 0).map(|i| w[i] * (xa[i] - s * t.level[pt[i] as usize]).powi(2)).sum();
            if e < best.0 {
                best = (e, pt[p]);
            }
        }
        best.1
    }

    /// Codes of one sub-block `x` (weights `w`) at step `s`, by round to nearest point per group
    /// (and, on IQ3_XXS, the cheapest sign flip per group of 8 with an odd count of negatives).
    pub fn round_sub_block(&self, x: &[f32], w: &[f32], s: f32, codes: &mut [u8]) {
        let t = self.tables();
        for ((x, w), c) in x.chunks(GROUP).zip(w.chunks(GROUP)).zip(codes.chunks_mut(GROUP)) {
            let xa: [f32; GROUP] = std::array::from_fn(|i| x[i].abs());
            let pt = if s > 0.0 { t.points[self.best_point(&xa, w, s)] } else { [0; GROUP] };
            for i in 0..GROUP {
                c[i] = code(x[i], pt[i]);
            }
        }
        if self.even_signs {
            for ((x, w), c) in x.chunks(OCTET).zip(w.chunks(OCTET)).zip(codes.chunks_mut(OCTET)) {
                self.even_out(x, w, s, c);
            }
        }
    }

    /// One group of 8 rounded with every weight's own sign (`c`): if its count of negatives is
    /// odd, the weight whose flip raises the weighted error least flips, its group of 4 rounded
    /// again for the negated target (the first of equals).
    fn even_out(&self, x: &[f32], w: &[f32], s: f32, c: &mut [u8]) {
        if c.iter().filter(|&&c| magnitude(c).1).count() % 2 == 0 {
            return;
        }
        let t = self.tables();
        let mut best = (f32::INFINITY, 0usize, [0u8; GROUP]);
        for i in 0..c.len() {
            let g0 = i - i % GROUP;
            let xa: [f32; GROUP] = std::array::from_fn(|k| x[g0 + k].abs());
            let now: [u8; GROUP] = std::array::from_fn(|k| magnitude(c[g0 + k]).0);
            let mut flipped = xa;
            flipped[i % GROUP] = -flipped[i % GROUP];
            let wg = &w[g0..g0 + GROUP];
            let pt = if s > 0.0 { t.points[self.best_point(&flipped, wg, s)] } else { [0; GROUP] };
            let rise = t.error(&flipped, wg, s, &pt) - t.error(&xa, wg, s, &now);
            if rise < best.0 {
                best = (rise, i, pt);
            }
        }
        let (_, i, pt) = best;
        let g0 = i - i % GROUP;
        for k in 0..GROUP {
            c[g0 + k] = signed_code(magnitude(c[g0 + k]).1 ^ (g0 + k == i), pt[k]);
        }
    }

    /// The targets the step is fitted to: |x|, on IQ3_XXS with ggml's sign flip (the least w·x²
    /// of a group of 8 with an odd count of negatives negated).
    fn targets(&self, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        if self.even_signs {
            for ((xa, x), w) in xa.chunks_mut(OCTET).zip(x.chunks(OCTET)).zip(w.chunks(OCTET)) {
                if x.iter().filter(|&&v| v < 0.0).count() % 2 == 1 {
                    let (mut imin, mut min) = (0, w[0] * x[0] * x[0]);
                    for i in 1..x.len() {
                        let a = w[i] * x[i] * x[i];
                        if a < min {
                            (imin, min) = (i, a);
                        }
                    }
                    xa[imin] = -xa[imin];
                }
            }
        }
        xa
    }

    /// Weighted error of sub-block `x` rounded at step `s`.
    pub fn sub_error(&self, x: &[f32], w: &[f32], s: f32) -> f32 {
        let mut c = [0u8; 32];
        let c = &mut c[..x.len()];
        self.round_sub_block(x, w, s, c);
        let t = self.tables();
        x.iter().zip(w).zip(&*c).map(|((&x, &w), &c)| w * (x - t.value(c, s)).powi(2)).sum()
    }

    /// The step of one sub-block (ggml's search): candidates mapping max|x| near the top
    /// magnitude 15, each scored by its least-squares step over the points it rounds to; the best
    /// is rounded again and refitted once.
    pub fn fit_step(&self, x: &[f32], w: &[f32]) -> f32 {
        let t = self.tables();
        let xa = self.targets(x, w);
        let max = xa.iter().copied().fold(0f32, f32::max);
        if max == 0.0 {
            return 0.0;
        }
        let refit = |s: f32| -> (f32, f32) {
            let (mut sqx, mut sqq) = (0f32, 0f32);
            for (xa, w) in xa.chunks(GROUP).zip(w.chunks(GROUP)) {
                let pt = &t.points[self.best_point(xa, w, s)];
                for i in 0..GROUP {
                    let q = t.level[pt[i] as usize];
                    sqx += w[i] * xa[i] * q;
                    sqq += w[i] * q * q;
                }
            }
            (sqx, sqq)
        };
        let (mut best, mut step) = (0f32, max / 15.0);
        for k in -self.search..=self.search {
            let (sqx, sqq) = refit(max / (15.0 + 0.2 * k as f32));
            if sqq > 0.0 && sqx > 0.0 && sqx * sqx > best * sqq {
                step = sqx / sqq;
                best = step * sqx;
            }
        }
        let (sqx, sqq) = refit(step);
        if sqq > 0.0 && sqx > 0.0 { sqx / sqq } else { step }
    }

    /// The point index of a group's codes (which must be a point).
    pub fn point_of(&self, codes: &[u8]) -> u16 {
        let m: [u8; GROUP] = std::array::from_fn(|i| magnitude(codes[i]).0);
        let k = self.tables().index[pattern(&m)];
        assert!(k >= 0, "{} codes {m:?} are not a point of the grid", self.name);
        k as u16
    }

    /// The magnitude indices of point `k`.
    pub fn point(&self, k: usize) -> [u8; GROUP] {
        self.tables().points[k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `iq3xxs_grid` (ggml-common.h): each point's four bytes, first weight lowest.
    const IQ3XXS_GRID: [u32; 256] = [
        0x04040404, 0x04040414, 0x04040424, 0x04040c0c, 0x04040c1c, 0x04040c3e, 0x04041404, 0x04041414,
        0x04041c0c, 0x04042414, 0x04043e1c, 0x04043e2c, 0x040c040c, 0x040c041c, 0x040c0c04, 0x040c0c14,
        0x040c140c, 0x040c142c, 0x040c1c04, 0x040c1c14, 0x040c240c, 0x040c2c24, 0x040c3e04, 0x04140404,
        0x04140414, 0x04140424, 0x04140c0c, 0x04141404, 0x04141414, 0x04141c0c, 0x04141c1c, 0x04141c3e,
        0x04142c0c, 0x04142c3e, 0x04143e2c, 0x041c040c, 0x041c043e, 0x041c0c04, 0x041c0c14, 0x041c142c,
        0x041c3e04, 0x04240c1c, 0x04241c3e, 0x04242424, 0x04242c3e, 0x04243e1c, 0x04243e2c, 0x042c040c,
        0x042c043e, 0x042c1c14, 0x042c2c14, 0x04341c2c, 0x04343424, 0x043e0c04, 0x043e0c24, 0x043e0c34,
        0x043e241c, 0x043e340c, 0x0c04040c, 0x0c04041c, 0x0c040c04, 0x0c040c14, 0x0c04140c, 0x0c04141c,
        0x0c041c04, 0x0c041c14, 0x0c041c24, 0x0c04243e, 0x0c042c04, 0x0c0c0404, 0x0c0c0414, 0x0c0c0c0c,
        0x0c0c1404, 0x0c0c1414, 0x0c14040c, 0x0c14041c, 0x0c140c04, 0x0c140c14, 0x0c14140c, 0x0c141c04,
        0x0c143e14, 0x0c1c0404, 0x0c1c0414, 0x0c1c1404, 0x0c1c1c0c, 0x0c1c2434, 0x0c1c3434, 0x0c24040c,
        0x0c24042c, 0x0c242c04, 0x0c2c1404, 0x0c2c1424, 0x0c2c2434, 0x0c2c3e0c, 0x0c34042c, 0x0c3e1414,
        0x0c3e2404, 0x14040404, 0x14040414, 0x14040c0c, 0x14040c1c, 0x14041404, 0x14041414, 0x14041434,
        0x14041c0c, 0x14042414, 0x140c040c, 0x140c041c, 0x140c042c, 0x140c0c04, 0x140c0c14, 0x140c140c,
        0x140c1c04, 0x140c341c, 0x140c343e, 0x140c3e04, 0x14140404, 0x14140414, 0x14140c0c, 0x14140c3e,
        0x14141404, 0x14141414, 0x14141c3e, 0x14142404, 0x14142c2c, 0x141c040c, 0x141c0c04, 0x141c0c24,
        0x141c3e04, 0x141c3e24, 0x14241c2c, 0x14242c1c, 0x142c041c, 0x142c143e, 0x142c240c, 0x142c3e24,
        0x143e040c, 0x143e041c, 0x143e0c34, 0x143e242c, 0x1c04040c, 0x1c040c04, 0x1c040c14, 0x1c04140c,
        0x1c04141c, 0x1c042c04, 0x1c04342c, 0x1c043e14, 0x1c0c0404, 0x1c0c0414, 0x1c0c1404, 0x1c0c1c0c,
        0x1c0c2424, 0x1c0c2434, 0x1c14040c, 0x1c14041c, 0x1c140c04, 0x1c14142c, 0x1c142c14, 0x1c143e14,
        0x1c1c0c0c, 0x1c1c1c1c, 0x1c241c04, 0x1c24243e, 0x1c243e14, 0x1c2c0404, 0x1c2c0434, 0x1c2c1414,
        0x1c2c2c2c, 0x1c340c24, 0x1c341c34, 0x1c34341c, 0x1c3e1c1c, 0x1c3e3404, 0x24040424, 0x24040c3e,
        0x24041c2c, 0x24041c3e, 0x24042c1c, 0x24042c3e, 0x240c3e24, 0x24141404, 0x24141c3e, 0x24142404,
        0x24143404, 0x24143434, 0x241c043e, 0x241c242c, 0x24240424, 0x24242c0c, 0x24243424, 0x242c142c,
        0x242c241c, 0x242c3e04, 0x243e042c, 0x243e0c04, 0x243e0c14, 0x243e1c04, 0x2c040c14, 0x2c04240c,
        0x2c043e04, 0x2c0c0404, 0x2c0c0434, 0x2c0c1434, 0x2c0c2c2c, 0x2c140c24, 0x2c141c14, 0x2c143e14,
        0x2c1c0414, 0x2c1c2c1c, 0x2c240c04, 0x2c24141c, 0x2c24143e, 0x2c243e14, 0x2c2c0414, 0x2c2c1c0c,
        0x2c342c04, 0x2c3e1424, 0x2c3e2414, 0x34041424, 0x34042424, 0x34042434, 0x34043424, 0x340c140c,
        0x340c340c, 0x34140c3e, 0x34143424, 0x341c1c04, 0x341c1c34, 0x34242424, 0x342c042c, 0x342c2c14,
        0x34341c1c, 0x343e041c, 0x343e140c, 0x3e04041c, 0x3e04042c, 0x3e04043e, 0x3e040c04, 0x3e041c14,
        0x3e042c14, 0x3e0c1434, 0x3e0c2404, 0x3e140c14, 0x3e14242c, 0x3e142c14, 0x3e1c0404, 0x3e1c0c2c,
        0x3e1c1c1c, 0x3e1c3404, 0x3e24140c, 0x3e24240c, 0x3e2c0404, 0x3e2c0414, 0x3e2c1424, 0x3e341c04,
    ];

    /// A point's bytes as ggml's grid tables hold them: the block's level of each magnitude.
    fn grid_word(g: &Iq3Grid, k: usize) -> u32 {
        g.point(k).iter().enumerate().fold(0, |a, (i, &m)| a | (g.lut[8 + m as usize] as u8 as u32) << (8 * i))
    }

    #[test]
    fn the_tables_are_ggmls() {
        for (g, n) in [(&IQ3S, 512), (&IQ3XXS, 256)] {
            let t = g.tables();
            assert_eq!(t.index.iter().filter(|&&k| k >= 0).count(), n, "{}", g.name);
            // Every pattern off the grid has neighbours, all points.
            for u in 0..PATTERNS {
                assert_eq!(t.neighbours[u].is_empty(), t.index[u] >= 0, "{} pattern {u}", g.name);
            }
            assert_eq!(t.by_known[0][0].len(), n);
            for mask in 0..16 {
                assert_eq!(t.by_known[mask].iter().map(Vec::len).sum::<usize>(), n);
            }
        }
        // ggml's iq3s_grid[1] = 0x01010103 (magnitudes 1, 0, 0, 0), [511] = 0x0f0f0101.
        assert_eq!(IQ3S.point(1), [1, 0, 0, 0]);
        assert_eq!((grid_word(&IQ3S, 1), grid_word(&IQ3S, 511)), (0x01010103, 0x0f0f0101));
        // IQ3_XXS's points, decoded from kgrid_256 with its levels (the top one 62), are
        // iq3xxs_grid; its levels are 4·(2m + 1) but the top, 4·15.5.
        for k in 0..256 {
            assert_eq!(grid_word(&IQ3XXS, k), IQ3XXS_GRID[k], "point {k}");
        }
        assert_eq!(IQ3XXS.tables().level, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.5]);
        assert_eq!(IQ3S.tables().level, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]);
    }

    #[test]
    fn points_on_the_grid_round_to_themselves() {
        let s = 0.01f32;
        for (g, ks) in [(&IQ3S, [0usize, 1, 77, 300, 511]), (&IQ3XXS, [0, 5, 77, 200, 255])] {
            for k in ks {
                // Two groups on the point, signs alternating: four negatives of eight.
                let m = g.point(k);
                let x: Vec<f32> = (0..8).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 } * s * g.level(m[i % 4])).collect();
                let mut c = [0u8; 8];
                g.round_sub_block(&x, &[1.0; 8], s, &mut c);
                for h in 0..2 {
                    assert_eq!(g.point_of(&c[4 * h..4 * h + 4]) as usize, k, "{}", g.name);
                }
                for i in 0..8 {
                    assert_eq!(g.tables().value(c[i], s), x[i], "{} point {k} weight {i}", g.name);
                }
            }
        }
    }

    /// IQ3_XXS: a group of 8 with one negative weight flips the sign whose flip costs least —
    /// the smallest weight, unless its importance makes another one cheaper.
    #[test]
    fn an_odd_count_of_negatives_flips_the_cheapest_sign() {
        let negatives = |c: &[u8]| -> Vec<usize> { (0..c.len()).filter(|&i| magnitude(c[i]).1).collect() };
        let x = [-1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.1];
        let mut c = [0u8; 8];
        IQ3XXS.round_sub_block(&x, &[1.0; 8], 1.0, &mut c);
        assert_eq!(negatives(&c), [0, 7]);
        // Every weight rounds to magnitude 1: the flipped 0.1 costs (0.1 + 1)² − (0.1 − 1)².
        assert!(c.iter().all(|&c| magnitude(c).0 == 0));
        let e: f32 = x.iter().zip(&c).map(|(&x, &c)| (x - IQ3XXS.tables().value(c, 1.0)).powi(2)).sum();
        assert!((e - (0.64 + 1.21)).abs() < 1e-5, "{e}");
        assert_eq!(IQ3XXS.sub_error(&x, &[1.0; 8], 1.0), e);
        // Heavy weight on the smallest: the next smallest flips instead.
        IQ3XXS.round_sub_block(&x, &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0], 1.0, &mut c);
        assert_eq!(negatives(&c), [0, 6]);
        // An even count is left alone; IQ3_S keeps every sign.
        let even = [-1.0f32, -1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.1];
        IQ3XXS.round_sub_block(&even, &[1.0; 8], 1.0, &mut c);
        assert_eq!(negatives(&c), [0, 1]);
        IQ3S.round_sub_block(&x, &[1.0; 8], 1.0, &mut c);
        assert_eq!(negatives(&c), [0]);
        // A zero step still gives an even count (the block decodes to zeros either way).
        IQ3XXS.round_sub_block(&x, &[1.0; 8], 0.0, &mut c);
        assert_eq!(negatives(&c).len() % 2, 0);
    }

    /// The flip taken is the cheapest of the eight, each scored with its group of 4 rounded
    /// again for the flipped target (which may move the group to another point).
    #[test]
    fn the_flip_taken_is_the_cheapest_of_the_eight() {
        let t = IQ3XXS.tables();
        let mut rng = crate::stats::Rng::new(11);
        let mut odd = 0;
        for _ in 0..1000 {
            let x: [f32; 8] = std::array::from_fn(|_| (rng.uniform() as f32 - 0.5) * 16.0);
            let w: [f32; 8] = std::array::from_fn(|_| 0.5 + rng.uniform() as f32);
            let mut c = [0u8; 8];
            IQ3XXS.round_sub_block(&x, &w, 1.0, &mut c);
            assert_eq!(c.iter().filter(|&&c| magnitude(c).1).count() % 2, 0);
            let err = |c: &[u8]| -> f32 { (0..8).map(|i| w[i] * (x[i] - t.value(c[i], 1.0)).powi(2)).sum() };
            assert_eq!(IQ3XXS.sub_error(&x, &w, 1.0), err(&c));
            if x.iter().filter(|&&v| v < 0.0).count() % 2 == 0 {
                continue;
            }
            odd += 1;
            for i in 0..8 {
                let target: [f32; 8] = std::array::from_fn(|j| if j == i { -x[j].abs() } else { x[j].abs() });
                let mut alt = [0u8; 8];
                for g in 0..2 {
                    let pt = t.points[IQ3XXS.best_point(&target[4 * g..4 * g + 4], &w[4 * g..4 * g + 4], 1.0)];
                    for k in 0..4 {
                        alt[4 * g + k] = signed_code((x[4 * g + k] < 0.0) ^ (4 * g + k == i), pt[k]);
                    }
                }
                assert!(err(&c) <= err(&alt) * (1.0 + 1e-6), "flip {i}: {} against {}", err(&c), err(&alt));
            }
        }
        assert!(odd > 300, "{odd}");
    }

    #[test]
    fn constrained_choices_stay_on_the_grid_in_any_order() {
        let mut rng = crate::stats::Rng::new(3);
        for g in [&IQ3S, &IQ3XXS] {
            for trial in 0..2000 {
                let xa: [f32; 4] = std::array::from_fn(|i| rng.uniform() as f32 * 16.0 * if i == trial % 5 { -1.0 } else { 1.0 });
                let w = [1.0f32; 4];
                let order = [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]][trial % 3];
                let (mut known, mut m) = (0usize, [0u8; 4]);
                for p in order {
                    m[p] = g.constrained_magnitude(known, &m, &xa, &w, p, 1.0);
                    known |= 1 << p;
                }
                let codes: Vec<u8> = m.iter().map(|&m| code(1.0, m)).collect();
                g.point_of(&codes);
            }
        }
    }
}
