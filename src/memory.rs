//! Handing freed memory back to the system between the long phases of a job.
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
