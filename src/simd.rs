//! Runtime dispatch of a few hot loops to a build for AVX2 (x86-64 machines since 2013), which
//! doubles their vector width over the baseline x86-64 build (SSE2) without making the binary
//! depend on the host: the AVX2 build runs only where the CPU reports AVX2, the baseline
//! elsewhere. Only element-wise IEEE arithmetic is widened (no FMA, no reassociation: sums keep
//! their order), so both builds give the same bits; the tests of each kernel check it against
//! its plain loop on whichever build the host takes.

/// Defines `fn name(args) -> ret { body }` (or one without a return type) compiled twice, for
/// the baseline and for AVX2, and dispatched at run time on the CPU's features (a cached check).
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn baseline($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    baseline($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has just been found to support AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            baseline($($arg),*)
        }
    };
}

pub(crate) use avx2_dispatch;
