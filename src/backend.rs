//! Turning `--backend` into a Burn device.

use crate::config::BackendKind;
use anyhow::Result;
use burn::tensor::Device;

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

/// The name the adapter behind `--device index` gives itself, asked of the wgpu runtime's
/// client for the very device `wgpu_device` builds (same kind, automatic graphics API).
#[cfg(feature = "wgpu")]
fn wgpu_adapter(index: usize) -> String {
    use burn_cubecl::cubecl::wgpu::{WgpuDevice, WgpuDeviceKind};
    use burn_cubecl::CubeDevice;
    let kind = if index == 0 {
        WgpuDeviceKind::DefaultDevice
    } else {
        WgpuDeviceKind::DiscreteGpu(index - 1)
    };
    let client = CubeDevice::from(WgpuDevice::new(kind)).client();
    format!("{} (wgpu)", client.properties().identity.name)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_adapter(_index: usize) -> String {
    unreachable!("a wgpu device cannot be built without the wgpu feature")
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(_index: usize) -> Result<Device> {
    anyhow::bail!(
        "this build has no GPU backend: rebuild with the wgpu feature, e.g. `cargo run --features wgpu --bin ablate -- --backend wgpu ...`"
    )
}

/// A human-readable name of the adapter a run's device (`--device index`) runs on.
pub fn adapter_name(kind: BackendKind, index: usize) -> String {
    match kind {
        BackendKind::Ndarray | BackendKind::Flex => {
            format!("cpu ({} threads)", rayon::current_num_threads())
        }
        BackendKind::Wgpu => wgpu_adapter(index),
    }
}
