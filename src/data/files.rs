//! The text files a run names by option (`train-file`, `valid-file`, `test-file`): checks that
//! give one-line errors naming the option and the file, and content digests for the run id.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A relative data path that does not exist from the working directory is looked up in the
/// source checkout the binary was built from, so the shipped data is found from anywhere.
pub fn resolve_data_path(path: &Path) -> PathBuf {
    if path.is_relative() && !path.exists() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if shipped.exists() {
            return shipped;
        }
    }
    path.to_path_buf()
}

/// Lower-case hex of a finished hash.
pub fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses a file that does not exist, is not a regular file, or is empty.
pub fn check_text_file(option: &str, path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{option} {}: no such file", path.display())
        }
        Err(e) => bail!("{option} {}: cannot read it ({e})", path.display()),
    };
    if meta.is_dir() {
        bail!(
            "{option} {} is a folder; expected a text file, one sentence per line",
            path.display()
        );
    }
    if meta.len() == 0 {
        bail!(
            "{option} {} is empty; expected text, one sentence per line",
            path.display()
        );
    }
    Ok(())
}

/// Digests already computed in this process, by path, size and modification time: a study
/// builds many configurations on the same files and hashes each file once.
type DigestKey = (PathBuf, u64, Option<SystemTime>);
static DIGESTS: Mutex<Option<HashMap<DigestKey, String>>> = Mutex::new(None);

/// Lower-case hex SHA-256 of the file `option` names, after [`check_text_file`].
pub fn text_file_sha256(option: &str, path: &Path) -> Result<String> {
    check_text_file(option, path)?;
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(d) = DIGESTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return Ok(d.clone());
    }
    let digest = (|| -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let (mut hasher, mut buf) = (Sha256::new(), vec![0u8; 1 << 16]);
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(hex(hasher)),
                n => hasher.update(&buf[..n]),
            }
        }
    })()
    .with_context(|| format!("{option} {}: cannot read it", path.display()))?;
    DIGESTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, digest.clone());
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_folder_files_are_named_with_their_option() {
        let dir = std::env::temp_dir().join(format!("ablate-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.txt");
        let err = text_file_sha256("train-file", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("train-file ") && err.contains("missing.txt: no such file"),
            "{err}"
        );
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "").unwrap();
        let err = check_text_file("valid-file", &empty)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("valid-file") && err.contains("is empty"),
            "{err}"
        );
        let err = check_text_file("test-file", &dir).unwrap_err().to_string();
        assert!(err.contains("test-file") && err.contains("folder"), "{err}");
        let ok = dir.join("ok.txt");
        std::fs::write(&ok, "abc").unwrap();
        // SHA-256("abc")
        assert_eq!(
            text_file_sha256("train-file", &ok).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::write(&ok, "abcd").unwrap();
        assert_ne!(
            text_file_sha256("train-file", &ok).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
