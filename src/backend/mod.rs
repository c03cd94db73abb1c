//! The compute backends (`--backend`) and turning one into a Burn device.

mod adapter;

pub use adapter::{adapter_info, software_reason, vendor_name, AdapterInfo};

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// What `--backend cuda` says: burn-cuda is not part of any build of this tool (see docs/gpu.md).
pub const NO_CUDA: &str = "this build has no CUDA backend: burn-cuda 0.22 downloads a prebuilt LLVM while it compiles (cubecl-llvm), which the build machine cannot; on an NVIDIA GPU use --backend wgpu (Vulkan) from a build with the wgpu feature";

/// What `--backend wgpu` says in a build without the `wgpu` feature.
pub const NO_WGPU: &str = "this build has no GPU backend: rebuild with the wgpu feature, e.g. `cargo run --features wgpu --bin ablate -- --backend wgpu ...`";

/// Which Burn backend computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// CPU, burn-ndarray (Burn's older CPU backend; the reference weights are drawn on it).
    Ndarray,
    /// CPU, burn-flex (Burn's newer pure-Rust CPU backend; the default, about 1.5x faster).
    Flex,
    /// GPU through burn-wgpu (build with `--features wgpu`).
    Wgpu,
    /// NVIDIA GPU through burn-cuda: not in any build of this tool (it says why).
    Cuda,
}

impl BackendKind {
    pub fn name(&self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether it computes on a GPU (and `--device` selects one).
    pub fn is_gpu(&self) -> bool {
        matches!(self, BackendKind::Wgpu | BackendKind::Cuda)
    }

    /// Why this build cannot compute on it, if it cannot.
    pub fn missing_from_build(&self) -> Option<&'static str> {
        match self {
            BackendKind::Wgpu if !cfg!(feature = "wgpu") => Some(NO_WGPU),
            BackendKind::Cuda => Some(NO_CUDA),
            _ => None,
        }
    }
}

/// The compute device for a backend (without autodiff; training adds it).
pub fn device(kind: BackendKind, index: usize) -> Result<Device> {
    match kind {
        BackendKind::Ndarray => {
            #[allow(deprecated)] // ndarray is the project's CPU baseline (see README)
            let device = Device::ndarray();
            let _ = index;
            Ok(device)
        }
        BackendKind::Flex => Ok(Device::flex()),
        BackendKind::Wgpu => wgpu_device(index),
        BackendKind::Cuda => anyhow::bail!(NO_CUDA),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: usize) -> Result<Device> {
    use burn::tensor::DeviceKind;
    let kind = if index == 0 {
        DeviceKind::DefaultDevice
    } else {
        DeviceKind::DiscreteGpu(index - 1)
    };
    Ok(Device::wgpu(kind))
}

/// The name the adapter behind a wgpu device gives itself, asked of the runtime's client for
/// that very device.
#[cfg(feature = "wgpu")]
fn wgpu_adapter(device: &Device) -> String {
    match device.as_dispatch() {
        burn::backend::DispatchDevice::Cube(cube) => {
            format!("{} (wgpu)", cube.client().properties().identity.name)
        }
        other => format!("{other:?}"),
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_adapter(_device: &Device) -> String {
    unreachable!("a wgpu device cannot be built without the wgpu feature")
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(_index: usize) -> Result<Device> {
    anyhow::bail!(NO_WGPU)
}

/// A human-readable name of the adapter a device runs on.
pub fn adapter_name(kind: BackendKind, device: &Device) -> String {
    match kind {
        BackendKind::Ndarray | BackendKind::Flex => {
            format!("cpu ({} threads)", rayon::current_num_threads())
        }
        BackendKind::Wgpu => wgpu_adapter(device),
        BackendKind::Cuda => unreachable!("no build has a CUDA device"),
    }
}
