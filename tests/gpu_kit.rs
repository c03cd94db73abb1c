//! The GPU kit's scripts: the pieces of scripts/gpu-check.sh and scripts/gpu-bundle.sh on their
//! own (NVRTC search, the limits of what comes back, thinning a run's probes to fit, the size
//! budget, bad options), and with `--features wgpu` the bundle's round trip and the whole check on
//! Mesa's software Vulkan (lavapipe): refused without --allow-software-adapter, passing with it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `code` in bash after sourcing `script` (which then only defines its functions).
fn bash_with(script: &str, code: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("source {script} && {code}"))
        .current_dir(root());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bash")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn nvrtc_is_found_among_the_python_packages() {
    let dir = common::temp_dir("nvrtc");
    let lib = dir.join("site/nvidia/cuda_nvrtc/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libnvrtc.so.13"), b"").unwrap();
    let site = dir.join("site");
    let o = bash_with(
        "scripts/gpu-check.sh",
        "find_nvrtc",
        &[("GPU_CHECK_EXTRA_SITE", site.to_str().unwrap())],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o), lib.to_str().unwrap());
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = bash_with(
        "scripts/gpu-check.sh",
        "PATH=/nonexistent:$PATH find_nvrtc",
        &[("GPU_CHECK_EXTRA_SITE", empty.to_str().unwrap())],
    );
    // the machine's own Python packages may have it; a fake folder alone is not found
    assert!(!out(&o).starts_with(empty.to_str().unwrap()));
}

#[test]
fn what_comes_back_is_at_most_eight_small_flat_files() {
    let dir = common::temp_dir("returned");
    let check = |d: &Path| {
        bash_with(
            "scripts/gpu-check.sh",
            &format!("check_returned {}", d.display()),
            &[("GPU_CHECK_MAX_FILE_BYTES", "1000")],
        )
    };
    for i in 0..8 {
        std::fs::write(dir.join(format!("f{i}")), [b'x'; 1000]).unwrap();
    }
    assert!(check(&dir).status.success());
    std::fs::write(dir.join("f8"), b"x").unwrap();
    let o = check(&dir);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("9 files, at most 8"));
    std::fs::remove_file(dir.join("f8")).unwrap();
    std::fs::write(dir.join("f0"), [b'x'; 1001]).unwrap();
    assert!(!check(&dir).status.success(), "a file over the limit");
    std::fs::write(dir.join("f0"), b"x").unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::remove_file(dir.join("f7")).unwrap();
    assert!(!check(&dir).status.success(), "a folder");
}

#[test]
fn a_run_too_large_to_return_has_its_probes_thinned() {
    let dir = common::temp_dir("thin");
    let run = dir.join("paper-batch/run1");
    std::fs::create_dir_all(&run).unwrap();
    // incompressible values: the archive shrinks only by dropping rows
    let mut x: u64 = 88172645463325252;
    let mut probes = String::from("step,layer,name,value\n");
    for step in 1..=2000 {
        for layer in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            probes += &format!("{step},{layer},mean_dist,{}\n", x % 1_000_000_007);
        }
    }
    std::fs::write(run.join("probes.csv"), &probes).unwrap();
    std::fs::write(run.join("steps.csv"), "step,loss\n1,3.0\n").unwrap();
    let archive = dir.join("paper-batch.tar.xz");
    let o = bash_with(
        "scripts/gpu-check.sh",
        &format!("pack_run {} {}", run.display(), archive.display()),
        &[("GPU_CHECK_MAX_FILE_BYTES", "30000")],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::metadata(&archive).unwrap().len() <= 30000);
    let kept = std::fs::read_to_string(run.join("probes.csv")).unwrap();
    let note = std::fs::read_to_string(run.join("THINNED")).unwrap();
    let k: u64 = note
        .lines()
        .last()
        .unwrap()
        .split("divisible by ")
        .nth(1)
        .unwrap()
        .trim_end_matches(", to fit")
        .parse()
        .unwrap();
    assert!(k >= 2, "{note}");
    let steps: Vec<u64> = kept
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(!steps.is_empty() && steps.iter().all(|s| s % k == 0));
    assert_eq!(
        steps.len() as u64,
        4 * (2000 / k),
        "every layer of every kept step"
    );
}

#[test]
fn the_bundle_budget_counts_tree_and_bundle() {
    let o = bash_with("scripts/gpu-bundle.sh", "report 40000000 10000000", &[]);
    assert!(o.status.success(), "{o:?}");
    let text = out(&o);
    assert!(text.contains("tracked tree: 38.1 MiB"), "{text}");
    assert!(text.contains("bundle:       9.5 MiB"), "{text}");
    assert!(
        text.contains("together:     47.7 MiB of at most 60.0 MiB"),
        "{text}"
    );
    let o = bash_with("scripts/gpu-bundle.sh", "report 50000000 13000000", &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("over the limit"));
    // the tracked tree is counted from git's list of files
    let o = bash_with("scripts/gpu-bundle.sh", "tree_bytes", &[]);
    let bytes: u64 = out(&o).parse().unwrap();
    assert!(bytes > std::fs::metadata(root().join("Cargo.toml")).unwrap().len());
}

#[test]
fn bad_options_of_the_scripts_give_one_line() {
    for (script, args, expect) in [
        (
            "scripts/gpu-check.sh",
            vec!["--budget", "soon"],
            "--budget expects whole seconds",
        ),
        (
            "scripts/gpu-check.sh",
            vec!["--budget", "5"],
            "--budget must be 30 to 3600",
        ),
        (
            "scripts/gpu-check.sh",
            vec!["--frobnicate"],
            "unknown option --frobnicate",
        ),
        (
            "scripts/gpu-bundle.sh",
            vec!["--binary", "/nonexistent/ablate"],
            "is not an executable file",
        ),
    ] {
        let o = Command::new(root().join(script))
            .args(&args)
            .output()
            .unwrap();
        let err = common::stderr(&o);
        assert!(!o.status.success(), "{script} {args:?}");
        assert!(
            err.lines().next().unwrap_or("").contains(expect),
            "{script} {args:?}: {err}"
        );
    }
    let dir = common::temp_dir("nobundle");
    let o = Command::new(root().join("scripts/gpu-check.sh"))
        .args(["--out", dir.join("out").to_str().unwrap()])
        .env("GPU_CHECK_BUNDLE", dir.join("none.tar.xz"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("no bundle at"),
        "{}",
        common::stderr(&o)
    );
}

/// The bundle's pieces with this build's binary: staged with the Vulkan loader, packed, unpacked
/// by the check and run from there.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_bundle_round_trip() {
    let dir = common::temp_dir("bundle");
    let bin = env!("CARGO_BIN_EXE_ablate");
    let archive = dir.join("ablate-gpu.tar.xz");
    let o = bash_with(
        "scripts/gpu-bundle.sh",
        &format!(
            "stage {bin} {0}/stage && pack {0}/stage {1}",
            dir.display(),
            archive.display()
        ),
        &[("GPU_BUNDLE_XZ", "-0")],
    );
    assert!(o.status.success(), "{o:?}");
    let build = std::fs::read_to_string(dir.join("stage/BUILD")).unwrap();
    assert!(
        build.contains("Vulkan loader: libvulkan1") && build.contains("needs glibc: GLIBC_2."),
        "{build}"
    );
    let o = bash_with(
        "scripts/gpu-check.sh",
        &format!(
            "b=$(unpack_bundle {}/unpacked) && LD_LIBRARY_PATH={0}/unpacked/lib \"$b\" --version",
            dir.display()
        ),
        &[("GPU_CHECK_BUNDLE", archive.to_str().unwrap())],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(out(&o).starts_with("ablate "), "{}", out(&o));
    assert!(dir.join("unpacked/lib/libvulkan.so.1").is_file());
}

/// The whole check at tiny sizes on lavapipe: refused as a software adapter, then allowed.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_check_end_to_end_on_a_software_adapter() {
    let dir = common::temp_dir("gpu-check");
    let bin = env!("CARGO_BIN_EXE_ablate");
    let run = |allow: bool, out: &Path| {
        let mut c = Command::new(root().join("scripts/gpu-check.sh"));
        c.args([
            "--tiny",
            "--budget",
            "900",
            "--binary",
            bin,
            "--out",
            out.to_str().unwrap(),
        ]);
        if allow {
            c.arg("--allow-software-adapter");
        }
        c.env("XDG_RUNTIME_DIR", "/tmp").output().unwrap()
    };
    let refused = dir.join("refused");
    let o = run(false, &refused);
    assert_eq!(o.status.code(), Some(5), "{}", common::stderr(&o));
    let md = std::fs::read_to_string(refused.join("gpu-check.md")).unwrap();
    assert!(
        md.contains("wgpu: refused") && md.contains("software adapter"),
        "{md}"
    );

    let allowed = dir.join("allowed");
    let o = run(true, &allowed);
    let md = std::fs::read_to_string(allowed.join("gpu-check.md")).unwrap_or_default();
    assert!(o.status.success(), "{}\n{md}", common::stderr(&o));
    assert!(md.contains("parity on wgpu: every run agrees"), "{md}");
    assert!(
        md.contains("cuda: did not work") && md.contains("no CUDA backend"),
        "{md}"
    );
    assert!(
        md.contains("| layer | wgpu |") && md.contains("| batch | wgpu |"),
        "{md}"
    );
    assert!(md.contains("| scaled-batch | 20 of 20 |"), "{md}");
    let files: Vec<String> = std::fs::read_dir(&allowed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.len() <= 8, "{files:?}");
    for f in [
        "gpu-check.md",
        "check.tar.xz",
        "paper-batch.tar.xz",
        "paper-scaled-batch.tar.xz",
    ] {
        assert!(files.contains(&f.to_string()), "{f} in {files:?}");
    }
}

#[test]
fn the_float32_peak_is_looked_up_by_the_gpus_name() {
    let code = "import sys; sys.path.insert(0, 'benches'); import compare_pytorch_gpu as g\n\
        print(g.peak_for('NVIDIA H200', 0)[0], g.peak_for('NVIDIA H100 PCIe', 0)[0], \
        g.peak_for('NVIDIA H100 80GB HBM3', 0)[0], g.peak_for('llvmpipe (LLVM 15)', 0)[0], \
        g.peak_for('NVIDIA H200', 50.0))";
    let o = Command::new("python3")
        .args(["-c", code])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o), "67.0 51.0 67.0 None (50.0, '--peak-tflops')");
}
