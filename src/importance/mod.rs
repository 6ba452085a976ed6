//! Importance signals: what each block, sublayer and linear contributes, measured several ways
//! (docs/methods.md), gathered in one pass by `run::profile` into a [`Profile`].

pub mod ablation;
pub mod block_signals;
pub mod correlation;
pub mod imatrix_compare;
pub mod outliers;
pub mod profile;
pub mod quant_error;
pub mod run;

pub use profile::Profile;
pub use run::{profile, ProfileOptions};
