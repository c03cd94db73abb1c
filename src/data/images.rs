//! Fashion-MNIST in IDX format (gzip), the vision contrast to the text task.

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use flate2::read::GzDecoder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Read;
use std::path::Path;

/// Pixel mean and standard deviation of Fashion-MNIST (after /255), used to standardize.
pub const PIXEL_MEAN: f32 = 0.2868;
pub const PIXEL_STD: f32 = 0.3524;

#[derive(Debug, Clone)]
pub struct ImageSet {
    pub rows: usize,
    pub cols: usize,
    /// `n * rows * cols` standardized pixels.
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    fn subset(&self, idx: &[usize]) -> ImageSet {
        let px = self.rows * self.cols;
        let mut pixels = Vec::with_capacity(idx.len() * px);
        for &i in idx {
            pixels.extend_from_slice(&self.pixels[i * px..(i + 1) * px]);
        }
        ImageSet {
            rows: self.rows,
            cols: self.cols,
            pixels,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Largest image or label file read, compressed or not (Fashion-MNIST's training images are
/// 47 MB).
const MAX_IDX_BYTES: u64 = 1 << 30;

fn read_maybe_gz(path: &Path, what: &str) -> Result<Vec<u8>> {
    let raw = crate::errors::read_limited(path, MAX_IDX_BYTES, what)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .with_context(|| {
                format!(
                    "{what} file {} is not a complete gzip stream (truncated?)",
                    path.display()
                )
            })?;
        if out.len() as u64 > MAX_IDX_BYTES {
            bail!(
                "{what} file {} decompresses to more than {} MiB",
                path.display(),
                MAX_IDX_BYTES >> 20
            );
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Classes of the image task (Fashion-MNIST's ten).
pub const CLASSES: usize = 10;

/// Parses an IDX image file (magic 0x00000803) and its IDX label file (0x00000801).
pub fn load_idx(images: &Path, labels: &Path) -> Result<ImageSet> {
    let img = read_maybe_gz(images, "image")?;
    let lab = read_maybe_gz(labels, "label")?;
    if img.len() < 16 || be_u32(&img, 0) != 0x0803 {
        bail!(
            "{} is not an IDX image file (expected magic 0x00000803)",
            images.display()
        );
    }
    if lab.len() < 8 || be_u32(&lab, 0) != 0x0801 {
        bail!(
            "{} is not an IDX label file (expected magic 0x00000801)",
            labels.display()
        );
    }
    let (n, rows, cols) = (
        be_u32(&img, 4) as usize,
        be_u32(&img, 8) as usize,
        be_u32(&img, 12) as usize,
    );
    let expected = n
        .checked_mul(rows)
        .and_then(|x| x.checked_mul(cols))
        .and_then(|x| x.checked_add(16));
    if expected != Some(img.len()) {
        bail!(
            "{} is truncated or padded: header says {n} images of {rows}x{cols}, file has {} bytes",
            images.display(),
            img.len()
        );
    }
    if n == 0 || rows == 0 || cols == 0 {
        bail!(
            "{} holds no image ({n} images of {rows}x{cols})",
            images.display()
        );
    }
    let n_labels = be_u32(&lab, 4) as usize;
    if n_labels != n || lab.len() != 8 + n {
        bail!(
            "{} holds {} labels for {n} images",
            labels.display(),
            lab.len().saturating_sub(8)
        );
    }
    if let Some((i, &l)) = lab[8..]
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= CLASSES)
    {
        bail!(
            "{}: label {l} of image {i} is outside the {CLASSES} classes 0-{}",
            labels.display(),
            CLASSES - 1
        );
    }
    let pixels = img[16..]
        .iter()
        .map(|&p| (p as f32 / 255.0 - PIXEL_MEAN) / PIXEL_STD)
        .collect();
    Ok(ImageSet {
        rows,
        cols,
        pixels,
        labels: lab[8..].to_vec(),
    })
}

/// Deterministic split: every 10th image (index % 10 == 9) is validation, the rest train.
pub fn split(set: &ImageSet) -> (ImageSet, ImageSet) {
    let (valid, train): (Vec<usize>, Vec<usize>) = (0..set.len()).partition(|i| i % 10 == 9);
    (set.subset(&train), set.subset(&valid))
}

/// A batch of images `[batch, 1, rows, cols]` and labels.
pub struct ImageBatch {
    pub images: Tensor<4>,
    pub labels: Tensor<1, Int>,
    pub batch: usize,
}

pub fn image_batch(set: &ImageSet, idx: &[usize], device: &Device) -> ImageBatch {
    let sub = set.subset(idx);
    let labels: Vec<i64> = sub.labels.iter().map(|&l| l as i64).collect();
    ImageBatch {
        images: Tensor::from_data(
            TensorData::new(sub.pixels, [idx.len(), 1, set.rows, set.cols]),
            device,
        ),
        labels: Tensor::from_data(TensorData::new(labels, [idx.len()]), device),
        batch: idx.len(),
    }
}

/// Endless shuffled index batches over `n` items (last partial batch of an epoch dropped).
pub struct IndexBatches {
    n: usize,
    size: usize,
    rng: StdRng,
    queue: Vec<Vec<usize>>,
}

impl IndexBatches {
    pub fn new(n: usize, size: usize, seed: u64) -> Self {
        Self {
            n,
            size: size.min(n).max(1),
            rng: StdRng::seed_from_u64(seed),
            queue: Vec::new(),
        }
    }
}

impl Iterator for IndexBatches {
    type Item = Vec<usize>;
    fn next(&mut self) -> Option<Vec<usize>> {
        if self.queue.is_empty() {
            let mut order: Vec<usize> = (0..self.n).collect();
            order.shuffle(&mut self.rng);
            self.queue = order
                .chunks_exact(self.size)
                .map(|c| c.to_vec())
                .rev()
                .collect();
        }
        self.queue.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_idx(
        dir: &Path,
        n: usize,
        truncate: usize,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut img = vec![0, 0, 8, 3];
        img.extend((n as u32).to_be_bytes());
        img.extend(2u32.to_be_bytes());
        img.extend(2u32.to_be_bytes());
        img.extend((0..n * 4).map(|i| (i * 10 % 256) as u8));
        img.truncate(img.len() - truncate);
        let mut lab = vec![0, 0, 8, 1];
        lab.extend((n as u32).to_be_bytes());
        lab.extend((0..n).map(|i| (i % 10) as u8));
        let (pi, pl) = (dir.join("img.idx"), dir.join("lab.idx"));
        std::fs::write(&pi, img).unwrap();
        std::fs::write(&pl, lab).unwrap();
        (pi, pl)
    }

    #[test]
    fn parses_idx_and_rejects_truncated_files() {
        let dir = std::env::temp_dir().join(format!("ablate-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pi, pl) = write_idx(&dir, 20, 0);
        let set = load_idx(&pi, &pl).unwrap();
        assert_eq!((set.len(), set.rows, set.cols), (20, 2, 2));
        assert!((set.pixels[1] - (10.0 / 255.0 - PIXEL_MEAN) / PIXEL_STD).abs() < 1e-6);
        let (train, valid) = split(&set);
        assert_eq!((train.len(), valid.len()), (18, 2));
        assert_eq!(valid.labels, vec![9, 9]);
        let (pi, pl) = write_idx(&dir, 20, 3);
        let err = load_idx(&pi, &pl).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let err = load_idx(&pl, &pi).unwrap_err().to_string();
        assert!(err.contains("not an IDX image file"), "{err}");
    }
}
