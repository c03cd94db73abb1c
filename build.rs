//! Records the git revision the binary is built from (with `-dirty` when the work tree had
//! uncommitted changes), so every run's summary.json names the code that produced it rather
//! than whatever repository the run happened to start in.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    for path in [
        "src",
        "kernels",
        "Cargo.toml",
        "build.rs",
        ".git/HEAD",
        ".git/index",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    // a commit moves the branch ref without changing .git/HEAD itself
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed=.git/{branch}");
    }
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).map(|rev| {
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{rev}-dirty")
        } else {
            rev
        }
    });
    println!(
        "cargo:rustc-env=ABLATE_GIT_REVISION={}",
        revision.unwrap_or_default()
    );
}
