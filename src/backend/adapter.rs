//! What a GPU device is: the adapter's name, vendor, type and driver, and whether it is a CPU
//! in disguise (a software rasterizer such as Mesa's lavapipe), which `ablate gpu-check` must not
//! call a GPU.

use super::BackendKind;
use anyhow::Result;
use burn::tensor::Device;
use serde::Serialize;

/// The adapter behind a device, as its graphics API describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterInfo {
    pub name: String,
    /// The vendor's name where its PCI id is known, else the id in hex.
    pub vendor: String,
    /// "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other".
    pub device_type: String,
    pub driver: String,
    /// The graphics API (Vulkan, Metal, ...).
    pub api: String,
}

impl AdapterInfo {
    /// Why this adapter is software (the CPU), if it is.
    pub fn software(&self) -> Option<String> {
        software_reason(&self.name, &self.device_type, &self.driver)
    }
}

/// Names of software rasterizers: the CPU running a graphics API (lower case).
const SOFTWARE_NAMES: &[&str] = &[
    "llvmpipe",
    "lavapipe",
    "softpipe",
    "swiftshader",
    "microsoft basic render driver",
];

/// Why an adapter with this name, type and driver is software rather than a GPU, or `None`
/// for hardware. The type alone is not enough: drivers have reported lavapipe as "other".
pub fn software_reason(name: &str, device_type: &str, driver: &str) -> Option<String> {
    let lower = format!("{name} {driver}").to_lowercase();
    if let Some(known) = SOFTWARE_NAMES.iter().find(|s| lower.contains(*s)) {
        return Some(format!(
            "{known} is a software rasterizer running on the CPU"
        ));
    }
    if device_type.eq_ignore_ascii_case("cpu") {
        return Some("the driver reports its type as CPU".to_string());
    }
    None
}

/// The vendor of a PCI (or Khronos) vendor id.
pub fn vendor_name(id: u32) -> String {
    match id {
        0x10de => "NVIDIA".into(),
        0x1002 | 0x1022 => "AMD".into(),
        0x8086 => "Intel".into(),
        0x13b5 => "ARM".into(),
        0x5143 => "Qualcomm".into(),
        0x106b => "Apple".into(),
        0x1414 => "Microsoft".into(),
        0x1ae0 => "Google".into(),
        0x10005 => "Mesa".into(),
        other => format!("0x{other:04x}"),
    }
}

/// The adapter a device of `kind` runs on; an error for the CPU backends.
pub fn adapter_info(kind: BackendKind, device: &Device) -> Result<AdapterInfo> {
    match kind {
        BackendKind::Wgpu => wgpu_info(device),
        other => match other.missing_from_build() {
            Some(why) => anyhow::bail!("{why}"),
            None => anyhow::bail!("--backend {} is the CPU, not a GPU", other.name()),
        },
    }
}

/// The wgpu runtime names its adapter; wgpu's own list of adapters gives the rest.
#[cfg(feature = "wgpu")]
fn wgpu_info(device: &Device) -> Result<AdapterInfo> {
    use burn::backend::wgpu::wgpu;
    let burn::backend::DispatchDevice::Cube(cube) = device.as_dispatch() else {
        anyhow::bail!("not a wgpu device: {device:?}");
    };
    let name = cube.client().properties().identity.name.clone();
    let instance = wgpu::Instance::default();
    let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    let Some(info) = adapters
        .iter()
        .map(|a| a.get_info())
        .find(|i| i.name == name)
    else {
        // the runtime found it, so this only loses the details
        return Ok(AdapterInfo {
            name,
            vendor: "unknown".into(),
            device_type: "unknown".into(),
            driver: "unknown".into(),
            api: "unknown".into(),
        });
    };
    let device_type = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU",
        wgpu::DeviceType::Other => "other",
    };
    Ok(AdapterInfo {
        name,
        vendor: vendor_name(info.vendor),
        device_type: device_type.into(),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        api: format!("{:?}", info.backend),
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_info(_device: &Device) -> Result<AdapterInfo> {
    anyhow::bail!(super::NO_WGPU)
}

/// Polls a future to completion on this thread (wgpu's native futures are ready at once or
/// after the driver answers; no executor is needed).
#[cfg(feature = "wgpu")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_rasterizers_are_not_gpus() {
        for (name, kind, driver) in [
            ("llvmpipe (LLVM 15.0.6, 256 bits)", "CPU", "llvmpipe"),
            ("llvmpipe (LLVM 15.0.6, 256 bits)", "other", "Mesa 22.3.6"),
            ("Lavapipe", "other", ""),
            ("SwiftShader Device (Subzero)", "CPU", "SwiftShader driver"),
            ("Microsoft Basic Render Driver", "other", ""),
            ("some new rasterizer", "CPU", ""),
        ] {
            assert!(
                software_reason(name, kind, driver).is_some(),
                "{name} / {kind} / {driver}"
            );
        }
    }

    #[test]
    fn hardware_gpus_are_gpus() {
        for (name, kind, driver) in [
            ("NVIDIA H200", "discrete GPU", "NVIDIA 580.95.05"),
            ("NVIDIA H100 80GB HBM3", "discrete GPU", "NVIDIA"),
            (
                "AMD Radeon RX 7900 XTX (RADV NAVI31)",
                "discrete GPU",
                "radv Mesa",
            ),
            (
                "Intel(R) UHD Graphics 770 (ADL-S GT1)",
                "integrated GPU",
                "Intel open-source Mesa driver",
            ),
            ("Virtio-GPU Venus (NVIDIA L4)", "virtual GPU", "venus"),
        ] {
            assert_eq!(software_reason(name, kind, driver), None, "{name}");
        }
    }

    #[test]
    fn the_reason_names_the_rasterizer() {
        let why = software_reason("llvmpipe (LLVM 15)", "CPU", "").unwrap();
        assert!(
            why.starts_with("llvmpipe is a software rasterizer"),
            "{why}"
        );
    }

    #[test]
    fn vendor_ids_have_names() {
        assert_eq!(vendor_name(0x10de), "NVIDIA");
        assert_eq!(vendor_name(0x10005), "Mesa");
        assert_eq!(vendor_name(0xabcd), "0xabcd");
    }
}
