//! Handing freed memory back to the system between the long phases of a job, and keeping the
//! large buffers a job frees and allocates again many times.
//!
//! glibc's allocator keeps the pages of freed blocks for reuse (in every thread's arena), so a
//! phase that frees hundreds of megabytes — the planner's decoded model, the layer database's
//! GPTQ buffers — leaves them counted in the process's resident memory while the next phase
//! allocates its own. [`release_freed`] returns them (`malloc_trim`); elsewhere it does nothing.

/// Returns the heap's free pages to the system. Cheap (milliseconds); call it where a phase
/// ends and the next one's allocations do not reuse the last one's.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Blocks up to this size come from the heap rather than from a mapping of their own.
const MMAP_THRESHOLD: i32 = 128 << 20;
/// Free memory at the heap's top is handed back past this much.
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Lets blocks up to 128 MiB be reused from the heap. A window's logits (512 × 49 152 f32:
/// 100 MB for SmolLM2) are allocated and freed for every sensitivity probe, search child and
/// evaluation window; past glibc's largest self-tuned threshold (32 MB) each was a fresh
/// mapping, page-faulted and zeroed by the kernel, then unmapped. The heap keeps up to 1 GiB
/// free at its top, so that such a block freed there is not handed back at once (with twice the
/// threshold, glibc's own ratio, the system time fell by less: 12 s against 10 s of 16 s on a
/// 5-generation search); [`release_freed`] still returns it between phases. Blocks past the
/// threshold (an 8B model's 235 MB FFN matrices) are mapped as before. Call once, at start.
pub fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters, under its lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
