fn main() {
    keep_freed_memory_for_reuse();
    std::process::exit(glimpse::cli::main());
}

/// glibc hands every large block (attention scores are tens of MB per layer)
/// back to the kernel when it is freed, and the next allocation faults in
/// fresh zeroed pages: on the CPU that was a third of the vision tower's time.
/// Large blocks now come from the heap and stay there for reuse; the peak
/// memory is unchanged. One arena for all threads: layers load in parallel
/// on the pool's threads, whose own arenas handed their freed heaps back to
/// the kernel, so a third of the pages a load touched were fresh pages
/// faulted in again (an f32 2B model: 3.4 M page faults, 2.2 M with one
/// arena, and the load 1–3 s shorter). `GLIBC_TUNABLES`, when set, is left
/// to decide.
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only changes allocator settings; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
