//! The "top candidates for removal" tables.

use std::fmt::Write as _;

use super::fmt::{esc, order, ranks, sig};
use super::{Profile, TITLE_CANDIDATES, TOP_N};

/// The blocks and the sublayers with the lowest ablation ΔKL, with their ranks under the
/// ablation and under the cheap proxy for the same unit (block influence; redundancy).
pub(super) fn candidates(h: &mut String, p: &Profile) {
    let _ = writeln!(h, "<h2>{TITLE_CANDIDATES}</h2>");
    let kld: Vec<f64> = p.blocks.iter().map(|b| b.ablation_kld).collect();
    let bi: Vec<f64> = p.blocks.iter().map(|b| b.block_influence).collect();
    let (kld_rank, bi_rank) = (ranks(&kld, true), ranks(&bi, true));
    let top = order(&kld, true);
    let top = &top[..top.len().min(TOP_N)];
    let overlap = top.iter().filter(|&&i| bi_rank[i] <= top.len()).count();
    let _ = write!(
        h,
        "<p class=\"note\">Ranks count from 1 = the cheapest to remove: lowest ablation ΔKL, \
         lowest block influence, highest redundancy. Single-removal costs only; removing several \
         together costs more than the sum (EvoPress).</p>\n<div class=\"cols\">\n<div>\n\
         <h3>Blocks ({overlap} of these {} are also among the {} with the lowest block \
         influence)</h3>\n<table>\n<tr><th>block</th><th>ablation ΔKL</th><th>rank</th>\
         <th>block influence</th><th>rank</th></tr>\n",
        top.len(),
        top.len()
    );
    for &i in top {
        let b = &p.blocks[i];
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.index,
            sig(b.ablation_kld),
            kld_rank[i],
            sig(b.block_influence),
            bi_rank[i]
        );
    }
    h.push_str(
        "</table>\n</div>\n<div>\n<h3>Sublayers</h3>\n<table>\n<tr><th>block</th>\
        <th class=\"l\">sublayer</th><th>ablation ΔKL</th><th>rank</th><th>redundancy</th>\
        <th>rank</th></tr>\n",
    );
    let kld: Vec<f64> = p.sublayers.iter().map(|s| s.ablation_kld).collect();
    let red: Vec<f64> = p.sublayers.iter().map(|s| s.redundancy).collect();
    let (kld_rank, red_rank) = (ranks(&kld, true), ranks(&red, false));
    for &i in order(&kld, true).iter().take(TOP_N) {
        let s = &p.sublayers[i];
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            s.block,
            esc(&s.kind),
            sig(s.ablation_kld),
            kld_rank[i],
            sig(s.redundancy),
            red_rank[i]
        );
    }
    h.push_str("</table>\n</div>\n</div>\n");
}
