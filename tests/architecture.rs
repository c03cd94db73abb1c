//! The module layering of `src/` (see `src/lib.rs`): every `crate::` path in a module's
//! non-test code names a module of a lower layer (or the module itself). A new import that
//! points upwards, or a circle, fails here with the file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may use modules of lower layers only; modules of one layer
/// do not use each other.
const LAYERS: &[&[&str]] = &[
    &["errors", "progress", "backend", "ops"],
    &["norm", "data"],
    &["model"],
    &["config"],
    &["results", "probe"],
    &["train"],
    &["experiment", "bench", "memory", "gpucheck"],
    &["report"],
    &["cli"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| {
            panic!("module `{module}` is missing from LAYERS in tests/architecture.rs")
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of `text` before its unit tests (`#[cfg(test)]` modules come last in every file).
fn non_test_code(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// Every `crate::<module>` named in `code`, with its 1-based line.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.push((n + 1, name));
            }
            rest = after;
        }
    }
    found
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked: HashMap<String, usize> = HashMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main") || rel.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, used) in crate_paths(non_test_code(&text)) {
            *checked.entry(module.clone()).or_default() += 1;
            let is_module = src.join(format!("{used}.rs")).is_file() || src.join(&used).is_dir();
            if used == module || !is_module {
                continue; // itself, or an item at the crate root (an exported macro)
            }
            if layer_of(&used) >= layer_of(&module) {
                violations.push(format!(
                    "src/{}:{line}: `{module}` uses `crate::{used}` (layer {} uses layer {})",
                    rel.display(),
                    layer_of(&module),
                    layer_of(&used)
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
    // the scan found imports where they are known to exist (it is not looking at nothing)
    for module in ["cli", "train", "model", "norm", "report"] {
        assert!(
            checked.get(module).copied().unwrap_or(0) > 0,
            "no crate:: paths found in {module}"
        );
    }
}

#[test]
fn the_scan_sees_paths_and_skips_comments_and_tests() {
    let code = "use crate::norm::Norm; // crate::cli\nlet x = crate::ops::matmul(a, b);\n#[cfg(test)]\nuse crate::cli;";
    let paths = crate_paths(non_test_code(code));
    assert_eq!(paths, vec![(1, "norm".to_string()), (2, "ops".to_string())]);
}
