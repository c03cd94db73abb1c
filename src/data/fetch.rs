//! Fashion-MNIST's files that are not shipped: found where Debian installs them, or downloaded
//! once from the official source and checked.
//!
//! The 60,000-image training split (26 MB) is too large to travel with the repository, so a
//! run that names one of Fashion-MNIST's files by its official name (`train-images-idx3-ubyte.gz`
//! and the three others) and does not find it gets it: first from Debian's
//! `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist`), else from
//! [`OFFICIAL_URL`] into the folder the configuration names. The check is a SHA-256 of the
//! *decompressed* file, so the official gzip and Debian's (recompressed, other bytes) both pass.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where the Fashion-MNIST authors publish the files (their README's download links).
pub const OFFICIAL_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
/// Overrides [`OFFICIAL_URL`] (a mirror; the tests' local server).
pub const URL_VARIABLE: &str = "ABLATE_FASHION_MNIST_URL";
/// Where `apt-get install dataset-fashion-mnist` puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Overrides [`DEBIAN_DIR`] (tests).
pub const DEBIAN_DIR_VARIABLE: &str = "ABLATE_FASHION_MNIST_DIR";

/// A file of the dataset: its official name, what it holds, and the SHA-256 of its
/// decompressed bytes.
pub struct KnownFile {
    pub name: &'static str,
    pub what: &'static str,
    pub sha256: &'static str,
}

pub const FASHION_MNIST: [KnownFile; 4] = [
    KnownFile {
        name: "train-images-idx3-ubyte.gz",
        what: "Fashion-MNIST's 60,000 training images (26 MB)",
        sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    KnownFile {
        name: "train-labels-idx1-ubyte.gz",
        what: "Fashion-MNIST's 60,000 training labels",
        sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    KnownFile {
        name: "t10k-images-idx3-ubyte.gz",
        what: "Fashion-MNIST's 10,000 test images",
        sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    KnownFile {
        name: "t10k-labels-idx1-ubyte.gz",
        what: "Fashion-MNIST's 10,000 test labels",
        sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
];

/// Largest download accepted (the training images are 26 MB compressed).
const MAX_DOWNLOAD: u64 = 64 << 20;

/// The known file `path` names (by its file name), if any.
pub fn known(path: &Path) -> Option<&'static KnownFile> {
    let name = path.file_name()?.to_str()?;
    FASHION_MNIST.iter().find(|f| f.name == name)
}

/// SHA-256 (hex) of a file's content, decompressed first when it is gzip.
pub fn content_sha256(bytes: &[u8]) -> Result<String> {
    let mut hasher = Sha256::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::read::GzDecoder::new(bytes);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = dec.read(&mut buf).context("not a complete gzip stream")?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    } else {
        hasher.update(bytes);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Makes a missing known file available: the path to read it from (Debian's copy, or `path`
/// itself after a checked download). `Ok(None)` when `path` is not one of the known files.
pub fn obtain(path: &Path) -> Result<Option<PathBuf>> {
    let debian = std::env::var_os(DEBIAN_DIR_VARIABLE)
        .map(PathBuf::from)
        .unwrap_or_else(|| DEBIAN_DIR.into());
    let base = std::env::var(URL_VARIABLE).unwrap_or_else(|_| OFFICIAL_URL.to_string());
    obtain_from(path, &debian, &base)
}

fn obtain_from(path: &Path, debian_dir: &Path, base: &str) -> Result<Option<PathBuf>> {
    let Some(file) = known(path) else {
        return Ok(None);
    };
    let debian = debian_dir.join(file.name);
    if debian.is_file() {
        return Ok(Some(debian));
    }
    let url = format!("{}/{}", base.trim_end_matches('/'), file.name);
    download(file, &url, path).map_err(|e| {
        anyhow::anyhow!(
            "{} ({}) is missing and could not be downloaded from {url} ({e}): install Debian's `dataset-fashion-mnist` (apt-get install dataset-fashion-mnist; it is then found in {DEBIAN_DIR}), or download the file into {}, or pass --images-dir DIR",
            path.display(),
            file.what,
            path.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".into()),
        )
    })?;
    Ok(Some(path.to_path_buf()))
}

/// Downloads `url` into `dest` (through a temporary file, renamed once checked).
fn download(file: &KnownFile, url: &str, dest: &Path) -> Result<()> {
    eprintln!("ablate: fetching {} from {url}", file.what);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(600)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD)
        .read_to_vec()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let got = content_sha256(&bytes)?;
    if got != file.sha256 {
        bail!(
            "the download's content has SHA-256 {got}, not the expected {}",
            file.sha256
        );
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // several runs of a study may fetch at once: each writes its own file, the rename is atomic
    let tmp = dest.with_extension(format!(
        "part.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
    eprintln!(
        "ablate: {} saved to {} (SHA-256 of its content checked)",
        file.what,
        dest.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_test_split_has_the_recorded_content_hash() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let file = known(Path::new(name)).unwrap();
            assert_eq!(content_sha256(&bytes).unwrap(), file.sha256, "{name}");
        }
        assert!(known(Path::new("data/other.gz")).is_none());
    }

    /// Serves `body` once on 127.0.0.1 and returns the base URL.
    fn serve_once(body: Vec<u8>) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // the request's head ends at an empty line
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        });
        format!("http://{addr}/")
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ablate-fetch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_missing_file_is_downloaded_checked_and_saved() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/t10k-labels-idx1-ubyte.gz");
        let base = serve_once(std::fs::read(&shipped).unwrap());
        let dir = temp_dir("ok");
        let dest = dir.join("data/t10k-labels-idx1-ubyte.gz");
        let got = obtain_from(&dest, &dir.join("no-debian"), &base).unwrap();
        assert_eq!(got.as_deref(), Some(dest.as_path()));
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(&shipped).unwrap()
        );
        // nothing but the file is left in its folder
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_download_with_other_content_is_refused_and_not_saved() {
        let base = serve_once(b"not the labels".to_vec());
        let dir = temp_dir("bad");
        let dest = dir.join("t10k-labels-idx1-ubyte.gz");
        let err = obtain_from(&dest, &dir.join("no-debian"), &base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256"), "{err}");
        assert!(
            err.contains("apt-get install dataset-fashion-mnist"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(!dest.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debians_copy_is_used_before_any_download() {
        let dir = temp_dir("debian");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), b"x").unwrap();
        let dest = dir.join("elsewhere/train-labels-idx1-ubyte.gz");
        // no server: a download would fail
        let got = obtain_from(&dest, &dir, "http://127.0.0.1:9/").unwrap();
        assert_eq!(got, Some(dir.join("train-labels-idx1-ubyte.gz")));
        assert_eq!(obtain_from(&dir.join("mine.gz"), &dir, "x").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gzip_and_raw_bytes_of_one_content_hash_alike() {
        use std::io::Write;
        let raw = b"some idx bytes".to_vec();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        assert_ne!(gz, raw);
        assert_eq!(content_sha256(&gz).unwrap(), content_sha256(&raw).unwrap());
        // sha256("abc"), FIPS 180-2's first example
        assert_eq!(
            content_sha256(b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
