use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A training step frees and reallocates the same tensors every step. By default mimalloc returns
/// freed pages to the OS after 10 ms, so each step faults them in again and the kernel zeroes
/// them; keeping them made the default flex step 18 % faster (benches/RESULTS.md). Set from a
/// static constructor so that it holds before the first allocation, as the variable
/// `MIMALLOC_PURGE_DELAY=-1` would; results do not change, only where memory comes from.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static KEEP_FREED_PAGES: extern "C" fn() = keep_freed_pages;

#[cfg(target_os = "linux")]
extern "C" fn keep_freed_pages() {
    /// `mi_option_purge_delay` in mimalloc's `mi_option_e` (include/mimalloc.h, v2 and v3);
    /// the sys crate has no constant for it.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option; no allocation has happened yet.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

fn main() {
    // A panic is a bug; still, the user gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = ablate::train::panic_message(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error{at}: {}",
            ablate::errors::one_line(&msg)
        );
    }));
    let cli = match ablate::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            ablate::say_raw!("{e}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{}", ablate::cli::clap_error_line(&e));
            std::process::exit(2);
        }
    };
    match ablate::cli::main_with(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", ablate::errors::one_line(&format!("{e:#}")));
            std::process::exit(1);
        }
    }
}
