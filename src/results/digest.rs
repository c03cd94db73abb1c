//! SHA-256 digests that let a checkpoint vouch for the files it points at: the CSV rows written
//! before it (hashed as they are written, so a checkpoint costs no re-reading), its own
//! `state.json` and tensor files, and the data a run trains on.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Lower-case hex of a finished hash.
pub fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(Sha256::new_with_prefix(bytes))
}

/// SHA-256 of the first `len` bytes of `path` (the whole file when `len` is `None`), and the
/// hasher after them (to go on hashing what is appended). Fails when the file is shorter.
pub fn prefix_sha256(path: &Path, len: Option<u64>) -> Result<Sha256> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let on_disk = file.metadata()?.len();
    let want = len.unwrap_or(on_disk);
    if on_disk < want {
        anyhow::bail!(
            "{} holds {on_disk} bytes, fewer than the {want} its checkpoint recorded",
            path.display()
        );
    }
    let mut hasher = Sha256::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file).take(want);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher)
}

/// The number of line ends in the first `len` bytes of `path`.
pub fn prefix_lines(path: &Path, len: u64) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file).take(len);
    let (mut lines, mut buf) = (0u64, vec![0u8; 1 << 16]);
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// Hex SHA-256 of a whole file.
pub fn file_sha256(path: &Path) -> Result<String> {
    Ok(hex(prefix_sha256(path, None)?))
}

/// A file that hashes every byte written to it: the digest of everything written so far is at
/// hand without reading the file back.
pub struct HashingFile {
    pub file: File,
    hasher: Sha256,
}

impl HashingFile {
    /// `file` positioned at its end, with `hasher` holding the hash of what it already holds.
    pub fn new(file: File, hasher: Sha256) -> Self {
        Self { file, hasher }
    }

    /// Hex SHA-256 of everything written (call after a flush of any buffer above it).
    pub fn digest(&self) -> String {
        hex(self.hasher.clone())
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_agree_with_hand_computed_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let dir = std::env::temp_dir().join(format!("ablate-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut f = HashingFile::new(File::create(&path).unwrap(), Sha256::new());
        f.write_all(b"ab").unwrap();
        f.write_all(b"c").unwrap();
        assert_eq!(f.digest(), abc);
        f.write_all(b"def").unwrap();
        assert_eq!(hex(prefix_sha256(&path, Some(3)).unwrap()), abc);
        assert_ne!(file_sha256(&path).unwrap(), abc);
        assert!(prefix_sha256(&path, Some(7)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
