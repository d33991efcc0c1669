//! Fused Adam with global-norm gradient clipping over every parameter at once
//! (`shaders/adam.wgsl`), matching `torch.nn.utils.clip_grad_norm_(params, max_norm)` followed
//! by `torch.optim.Adam(params, lr, betas, eps)` (weight decay 0, no amsgrad).
//!
//! # Layout: one flat buffer
//! [`FlatParams`] keeps every parameter tensor of a model in ONE flat buffer, in a fixed order
//! with an offset per named tensor. That flat buffer is the authoritative copy; the model reads
//! per-tensor [`Tensor`] *views* (separate buffers, since a `Tensor` has no offset), which the
//! optimiser refreshes with one buffer copy each after the update. [`Adam`] keeps `m`, `v` and
//! a gradient scratch buffer in the same layout. One [`Adam::step`] records:
//!
//! 1. N buffer copies gathering the tape's per-tensor gradients into the flat gradient buffer
//!    (plus one clear when some tensor received no gradient: it counts as zero);
//! 2. `sumsq_partial`: sum of squares per chunk of 16384 gradients (one workgroup per chunk);
//! 3. `norm_finish`: one workgroup sums the partials, writes the total norm and the clip
//!    coefficient `min(max_norm / (norm + 1e-6), 1)` to two one-element buffers;
//! 4. `adam_update`: one thread per parameter reads the coefficient from its buffer and updates
//!    `p`, `m`, `v` in place;
//! 5. N buffer copies from the flat parameters to the views.
//!
//! So a step is [`Adam::DISPATCHES_PER_STEP`] = 3 dispatches whatever the number of tensors,
//! and no host round trip: the norm and the coefficient never leave the GPU. The 2N copies are
//! transfer commands (no pipeline, no bind group), far cheaper to record and run than
//! dispatches. The alternatives cost more: a per-tensor Adam needs 2N+1 dispatches (a norm
//! partial and an update per tensor); gathering parameters from per-tensor buffers as well
//! (parameters not kept flat) needs 3N copies instead of 2N.
//!
//! # State, resume, logging
//! The step count `t` lives on the host and is passed to the kernel as the bias corrections
//! `step_size = lr / (1 - beta1^t)` and `sqrt(1 - beta2^t)`, computed in f64 as PyTorch does with
//! Python floats. [`Adam::state`] / [`Adam::set_state`] expose `(m, v, t)` for exact resume
//! (together with [`FlatParams::to_vec`] / [`FlatParams::set_all`]). [`Adam::last_norm`] is the
//! total gradient norm of the latest step as a one-element tensor, fresh each step, so a trainer
//! can read it back together with the loss without an extra sync.
//!
//! # Non-finite gradients
//! Nothing is rejected (the trainer decides). As in PyTorch with `error_if_nonfinite=False`, a
//! NaN gradient makes the norm NaN and therefore the clip coefficient and every parameter NaN;
//! an infinite one makes the norm infinite and the coefficient 0 (with clipping on), so the
//! infinite elements become NaN and the others step with a zero gradient (m and v still decay).
//! (WGSL lets drivers assume no NaN/inf, so the exact propagation is not guaranteed.) A trainer
//! that wants to skip such steps should read `last_norm()` with the loss, and on a non-finite
//! value restore parameters and `state()` saved before the step.

use crate::error::{shape_err, Error, Result};
use crate::gpu::pipelines::{kernel_sig, KernelSig};
use crate::gpu::{Gpu, WG_1D};
use crate::ops::grid;
use crate::tensor::Tensor;

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `adam::sumsq_partial`.
pub const SUMSQ_PARTIAL: KernelSig =
    kernel_sig!(Params, "adam", "sumsq_partial", [], ["grad", "partials"]);

/// `adam::norm_finish`.
pub const NORM_FINISH: KernelSig = kernel_sig!(
    Params,
    "adam",
    "norm_finish",
    ["CLIP"],
    ["partials", "norm", "coef"]
);

/// `adam::adam_update`.
pub const ADAM_UPDATE: KernelSig = kernel_sig!(
    Params,
    "adam",
    "adam_update",
    [],
    ["grad", "coef", "param", "m", "v"]
);

/// Gradients per thread of `sumsq_partial` (`PER_THREAD` in the shader).
pub const PER_THREAD: usize = 64;
/// Gradients per `sumsq_partial` workgroup.
const CHUNK: usize = WG_1D as usize * PER_THREAD;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    n: u32,
    n_partials: u32,
    _pad0: u32,
    _pad1: u32,
    max_norm: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    step_size: f32,
    sqrt_bc2: f32,
    eps: f32,
}

/// `(name, shape, values)` of one parameter tensor read back to the host.
pub type NamedValues = (String, Vec<usize>, Vec<f32>);

/// Where one named tensor lives in the flat buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamEntry {
    pub name: String,
    pub shape: Vec<usize>,
    /// First element in the flat buffer.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

fn layout<'a>(
    specs: impl Iterator<Item = (&'a str, &'a [usize])>,
) -> Result<(Vec<ParamEntry>, usize)> {
    let mut entries: Vec<ParamEntry> = Vec::new();
    let mut offset = 0;
    for (name, shape) in specs {
        if entries.iter().any(|e| e.name == name) {
            return shape_err("FlatParams", format!("parameter '{name}' named twice"));
        }
        let len: usize = shape.iter().product();
        entries.push(ParamEntry {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset,
            len,
        });
        offset += len;
    }
    if offset == 0 {
        return shape_err("FlatParams", "no parameters");
    }
    Ok((entries, offset))
}

/// Every parameter tensor of a model in one flat buffer, with per-tensor views for the model.
/// The flat buffer is authoritative: write parameters through [`FlatParams::set`] /
/// [`FlatParams::set_all`], or call [`FlatParams::gather_views`] after writing into views.
pub struct FlatParams {
    gpu: Gpu,
    entries: Vec<ParamEntry>,
    flat: Tensor,
    views: Vec<Tensor>,
}

impl FlatParams {
    /// Zero-initialised parameters with these names and shapes, in this order.
    pub fn new(gpu: &Gpu, specs: &[(&str, &[usize])]) -> Result<FlatParams> {
        let (entries, total) = layout(specs.iter().map(|(n, s)| (*n, *s)))?;
        let flat = Tensor::zeros(gpu, &[total])?;
        let views = entries
            .iter()
            .map(|e| Tensor::zeros(gpu, &e.shape))
            .collect::<Result<_>>()?;
        Ok(FlatParams {
            gpu: gpu.clone(),
            entries,
            flat,
            views,
        })
    }

    /// Adopt existing (initialised or loaded) tensors: their values are copied into the flat
    /// buffer and the tensors themselves become the views (shared buffers), so the holder of
    /// a tensor sees every update without fetching it again. Each tensor must own its buffer
    /// alone among the list (no two entries sharing one).
    pub fn from_tensors(gpu: &Gpu, tensors: &[(&str, &Tensor)]) -> Result<FlatParams> {
        let (entries, total) = layout(tensors.iter().map(|(n, t)| (*n, t.shape())))?;
        let flat = Tensor::empty(gpu, &[total])?;
        for (e, (_, t)) in entries.iter().zip(tensors) {
            gpu.copy(t.buf(), 0, flat.buf(), e.offset, e.len);
        }
        Ok(FlatParams {
            gpu: gpu.clone(),
            entries,
            flat,
            views: tensors.iter().map(|(_, t)| (*t).clone()).collect(),
        })
    }

    /// Total number of parameters.
    pub fn len(&self) -> usize {
        self.flat.len()
    }
    /// Never true (an empty set is rejected at creation).
    pub fn is_empty(&self) -> bool {
        self.flat.is_empty()
    }
    /// Names, shapes and offsets, in flat order.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }
    /// The flat buffer `[len]`.
    pub fn flat(&self) -> &Tensor {
        &self.flat
    }
    /// Per-tensor views, in the order of `entries`.
    pub fn views(&self) -> &[Tensor] {
        &self.views
    }
    /// Position of `name` in `entries`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }
    /// The view of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index_of(name).map(|i| &self.views[i])
    }

    /// Record copies of the flat buffer into every view (done by each optimiser step).
    pub fn sync_views(&self) {
        for (e, v) in self.entries.iter().zip(&self.views) {
            self.gpu.copy(self.flat.buf(), e.offset, v.buf(), 0, e.len);
        }
    }

    /// Record copies of every view into the flat buffer (after writing into views directly).
    pub fn gather_views(&self) {
        for (e, v) in self.entries.iter().zip(&self.views) {
            self.gpu.copy(v.buf(), 0, self.flat.buf(), e.offset, e.len);
        }
    }

    /// Overwrite all parameters from host values in flat order, views included.
    pub fn set_all(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.len() {
            return shape_err(
                "FlatParams::set_all",
                format!("{} values for {} parameters", data.len(), self.len()),
            );
        }
        self.gpu.write(self.flat.buf(), data)?;
        self.sync_views();
        Ok(())
    }

    /// Overwrite tensor `name` from host values (recorded: ordered with the other commands).
    pub fn set(&self, name: &str, data: &[f32]) -> Result<()> {
        let i = self
            .index_of(name)
            .ok_or_else(|| Error::Invalid(format!("no parameter named '{name}'")))?;
        let e = &self.entries[i];
        if data.len() != e.len {
            return shape_err(
                "FlatParams::set",
                format!("{} values for '{name}' of shape {:?}", data.len(), e.shape),
            );
        }
        let tmp = Tensor::from_vec(&self.gpu, &e.shape, data)?;
        self.gpu
            .copy(tmp.buf(), 0, self.flat.buf(), e.offset, e.len);
        self.gpu.copy(tmp.buf(), 0, self.views[i].buf(), 0, e.len);
        Ok(())
    }

    /// Read all parameters back in flat order.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.flat.to_vec()
    }

    /// Read all parameters back as `(name, shape, values)` (one readback), e.g. for a checkpoint.
    pub fn to_named(&self) -> Result<Vec<NamedValues>> {
        let all = self.to_vec()?;
        Ok(self
            .entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.shape.clone(),
                    all[e.offset..e.offset + e.len].to_vec(),
                )
            })
            .collect())
    }
}

/// Hyper-parameters, as f64 like PyTorch's Python floats (the bias corrections are computed
/// on the host in f64, then passed to the kernel as f32).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global-norm clipping threshold (`clip_grad_norm_`'s `max_norm`); `None`: no clipping
    /// (the norm is still computed and reported).
    pub max_norm: Option<f64>,
}

impl AdamConfig {
    /// PyTorch's defaults with learning rate `lr`: betas (0.9, 0.999), eps 1e-8, no clipping.
    pub fn new(lr: f64) -> AdamConfig {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_norm: None,
        }
    }
    /// Clip the global gradient norm to `max_norm` before each update.
    pub fn with_clip(self, max_norm: f64) -> AdamConfig {
        AdamConfig {
            max_norm: Some(max_norm),
            ..self
        }
    }
    fn validate(&self) -> Result<()> {
        let ok = self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps >= 0.0
            && self.max_norm.is_none_or(|c| c > 0.0);
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "invalid Adam configuration {self:?}: needs lr >= 0, 0 <= beta < 1, eps >= 0, max_norm > 0"
            )))
        }
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig::new(1e-3)
    }
}

/// Adam + global-norm clipping over a [`FlatParams`] (see the module docs).
pub struct Adam {
    gpu: Gpu,
    cfg: AdamConfig,
    /// Element counts of the layout this optimiser was built for (checked at every step).
    lens: Vec<usize>,
    m: Tensor,
    v: Tensor,
    grad: Tensor,
    partials: Tensor,
    t: u64,
    last_norm: Option<Tensor>,
    last_coef: Option<Tensor>,
}

impl Adam {
    /// Dispatches recorded by one step, independent of the number of parameter tensors.
    pub const DISPATCHES_PER_STEP: usize = 3;

    /// An optimiser for `params` with zero moments and step count 0.
    pub fn new(params: &FlatParams, cfg: AdamConfig) -> Result<Adam> {
        cfg.validate()?;
        let gpu = params.gpu.clone();
        let n = params.len();
        Ok(Adam {
            m: Tensor::zeros(&gpu, &[n])?,
            v: Tensor::zeros(&gpu, &[n])?,
            grad: Tensor::empty(&gpu, &[n])?,
            partials: Tensor::empty(&gpu, &[n.div_ceil(CHUNK)])?,
            lens: params.entries.iter().map(|e| e.len).collect(),
            gpu,
            cfg,
            t: 0,
            last_norm: None,
            last_coef: None,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// Change the learning rate (takes effect at the next step).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        let cfg = AdamConfig { lr, ..self.cfg };
        cfg.validate()?;
        self.cfg = cfg;
        Ok(())
    }

    /// Steps taken so far (PyTorch's `state['step']`).
    pub fn steps(&self) -> u64 {
        self.t
    }

    fn check_params(&self, params: &FlatParams) -> Result<()> {
        let same = params.entries.len() == self.lens.len()
            && params
                .entries
                .iter()
                .zip(&self.lens)
                .all(|(e, l)| e.len == *l);
        if same {
            Ok(())
        } else {
            shape_err(
                "Adam::step",
                "the parameters' layout differs from the one this optimiser was created for",
            )
        }
    }

    /// Record one update of `params` from per-tensor gradients, in the order of
    /// `params.entries()` (`None`: the tensor got no gradient, counted as zero, as PyTorch's
    /// clip does; note that, unlike PyTorch, which skips such a parameter entirely, Adam still
    /// decays its moments and moves it by `m / sqrt(v)`). Gathers the gradients with one copy
    /// each, then [`Adam::step_flat`].
    pub fn step(&mut self, params: &FlatParams, grads: &[Option<&Tensor>]) -> Result<()> {
        self.check_params(params)?;
        if grads.len() != params.entries.len() {
            return shape_err(
                "Adam::step",
                format!(
                    "{} gradients for {} parameter tensors",
                    grads.len(),
                    params.entries.len()
                ),
            );
        }
        for (e, g) in params.entries.iter().zip(grads) {
            if let Some(g) = g {
                if g.len() != e.len {
                    return shape_err(
                        "Adam::step",
                        format!(
                            "gradient {:?} for '{}' of shape {:?}",
                            g.shape(),
                            e.name,
                            e.shape
                        ),
                    );
                }
            }
        }
        if grads.iter().any(|g| g.is_none()) {
            self.gpu.clear(self.grad.buf());
        }
        for (e, g) in params.entries.iter().zip(grads) {
            if let Some(g) = g {
                self.gpu.copy(g.buf(), 0, self.grad.buf(), e.offset, e.len);
            }
        }
        let grad = self.grad.clone();
        self.step_flat(params, &grad)
    }

    /// Record one update of `params` from a flat gradient in the same layout (not modified):
    /// clip by the global norm, Adam, then refresh the views. Three dispatches.
    pub fn step_flat(&mut self, params: &FlatParams, grad: &Tensor) -> Result<()> {
        self.check_params(params)?;
        let n = params.len();
        if grad.len() != n {
            return shape_err(
                "Adam::step_flat",
                format!("gradient of {} values for {n} parameters", grad.len()),
            );
        }
        let gpu = &self.gpu;
        let t = self.t + 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powf(t as f64);
        let bc2 = 1.0 - c.beta2.powf(t as f64);
        let n_partials = n.div_ceil(CHUNK);
        let p = Params {
            n: n as u32,
            n_partials: n_partials as u32,
            max_norm: c.max_norm.unwrap_or(0.0) as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            step_size: (c.lr / bc1) as f32,
            sqrt_bc2: bc2.sqrt() as f32,
            eps: c.eps as f32,
            ..Default::default()
        };
        // Fresh one-element outputs each step: a tensor handed out by last_norm() is never
        // overwritten by a later step.
        let norm = Tensor::empty(gpu, &[1])?;
        let coef = Tensor::empty(gpu, &[1])?;
        let k1 = gpu.kernel(&SUMSQ_PARTIAL, &[])?;
        gpu.dispatch(
            &k1,
            &p,
            &[grad.buf(), self.partials.buf()],
            gpu.grid_1d(n_partials * WG_1D as usize, WG_1D),
        );
        let k2 = gpu.kernel(
            &NORM_FINISH,
            &[("CLIP", c.max_norm.is_some() as u32 as f64)],
        )?;
        gpu.dispatch(
            &k2,
            &p,
            &[self.partials.buf(), norm.buf(), coef.buf()],
            [1, 1, 1],
        );
        let k3 = gpu.kernel(&ADAM_UPDATE, &[])?;
        gpu.dispatch(
            &k3,
            &p,
            &[
                grad.buf(),
                coef.buf(),
                params.flat.buf(),
                self.m.buf(),
                self.v.buf(),
            ],
            grid(gpu, n),
        );
        params.sync_views();
        self.t = t;
        self.last_norm = Some(norm);
        self.last_coef = Some(coef);
        Ok(())
    }

    /// The total gradient norm (before clipping) of the latest step, `[1]`; `None` before the
    /// first step.
    pub fn last_norm(&self) -> Option<&Tensor> {
        self.last_norm.as_ref()
    }

    /// The factor the latest step's gradients were scaled by, `min(max_norm / (norm + 1e-6),
    /// 1)` (1 without clipping), `[1]`; `None` before the first step.
    pub fn last_clip_coef(&self) -> Option<&Tensor> {
        self.last_coef.as_ref()
    }

    /// Snapshot of the state `(m, v, t)`: copies (recorded in order with the steps), so later
    /// steps do not change them. `m` and `v` are flat, in the parameters' layout.
    pub fn state(&self) -> Result<(Tensor, Tensor, u64)> {
        Ok((self.m.deep_clone()?, self.v.deep_clone()?, self.t))
    }

    /// Restore a state saved by [`Adam::state`] (or read back and uploaded again). Together
    /// with the parameters, the next steps are then identical to the original run's.
    pub fn set_state(&mut self, m: &Tensor, v: &Tensor, t: u64) -> Result<()> {
        let n = self.m.len();
        if m.len() != n || v.len() != n {
            return shape_err(
                "Adam::set_state",
                format!("m {:?} / v {:?} for {n} parameters", m.shape(), v.shape()),
            );
        }
        self.gpu.copy(m.buf(), 0, self.m.buf(), 0, n);
        self.gpu.copy(v.buf(), 0, self.v.buf(), 0, n);
        self.t = t;
        Ok(())
    }
}

/// Plain-Rust f64 references implementing PyTorch's formulas, for the tests.
pub mod reference {
    use super::AdamConfig;

    /// `clip_grad_norm_`: scales `grads` in place; returns `(total_norm, clip_coef_clamped)`
    /// (the coefficient is 1 without clipping).
    pub fn clip_grad_norm(grads: &mut [f64], max_norm: Option<f64>) -> (f64, f64) {
        let total = grads.iter().map(|g| g * g).sum::<f64>().sqrt();
        let coef = match max_norm {
            Some(c) => (c / (total + 1e-6)).min(1.0),
            None => 1.0,
        };
        for g in grads.iter_mut() {
            *g *= coef;
        }
        (total, coef)
    }

    /// `torch.optim.Adam` state in f64.
    pub struct Adam {
        pub cfg: AdamConfig,
        pub m: Vec<f64>,
        pub v: Vec<f64>,
        pub t: u64,
    }

    impl Adam {
        pub fn new(n: usize, cfg: AdamConfig) -> Adam {
            Adam {
                cfg,
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
            }
        }

        /// Clip (if configured) then one Adam step; returns `(total_norm, clip_coef)`.
        pub fn step(&mut self, params: &mut [f64], grads: &[f64]) -> (f64, f64) {
            let c = self.cfg;
            let mut g = grads.to_vec();
            let stats = clip_grad_norm(&mut g, c.max_norm);
            self.t += 1;
            let bc1 = 1.0 - c.beta1.powf(self.t as f64);
            let bc2 = 1.0 - c.beta2.powf(self.t as f64);
            let step_size = c.lr / bc1;
            for i in 0..params.len() {
                self.m[i] = c.beta1 * self.m[i] + (1.0 - c.beta1) * g[i];
                self.v[i] = c.beta2 * self.v[i] + (1.0 - c.beta2) * g[i] * g[i];
                let denom = self.v[i].sqrt() / bc2.sqrt() + c.eps;
                params[i] -= step_size * self.m[i] / denom;
            }
            stats
        }
    }
}
