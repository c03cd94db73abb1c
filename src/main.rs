use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // A panic is a bug; still, the user gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        if msg.contains("Broken pipe") {
            // the reader went away (e.g. `ablate ... | head`): nothing left to tell anyone
            std::process::exit(0);
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error{at}: {}",
            ablate::config::one_line(&msg)
        );
    }));
    let cli = match ablate::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            print!("{e}");
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
            eprintln!("error: {}", ablate::config::one_line(&format!("{e:#}")));
            std::process::exit(1);
        }
    }
}
