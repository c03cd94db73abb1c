//! Building a run's model with the same weights on every backend.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

/// Moves a freshly built model to the compute device after drawing every parameter where it
/// was built (parameters are initialized lazily; touching them fixes their values first).
/// Burn's CPU generator is process-wide, and a study trains several runs at once: seeding it and
/// drawing a run's weights must not interleave with another run's draws.
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The model `make` builds on `init_device` with weights drawn from `seed`, moved to `device`.
pub fn seeded_init<M: Module>(
    seed: u64,
    init_device: &Device,
    device: &Device,
    make: impl FnOnce(&Device) -> M,
) -> M {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    init_device.seed(seed);
    fork_initialized(make(init_device), device)
}

fn fork_initialized<M: Module>(model: M, device: &Device) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
    model.fork(device)
}
