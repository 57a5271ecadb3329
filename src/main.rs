fn main() {
    keep_freed_memory_for_reuse();
    std::process::exit(glimpse::cli::main());
}

/// glibc hands every large block (attention scores are tens of MB per layer)
/// back to the kernel when it is freed, and the next allocation faults in
/// fresh zeroed pages: on the CPU that was a third of the vision tower's time.
/// Large blocks now come from the heap and stay there for reuse; the peak
/// memory is unchanged. `GLIBC_TUNABLES`, when set, is left to decide.
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only changes allocator settings; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
