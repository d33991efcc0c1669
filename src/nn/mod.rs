//! Parameters with the specification's names, their initialisers, `Linear` and `Mlp`, and
//! safetensors load/save of named parameters.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::Rng;

use crate::data::safetensors_io::{self, HostTensor};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::matmul::MlpForward;
use crate::ops::{self, Act};
use crate::tensor::{Tape, Tensor, Var};

/// How a parameter starts.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// Xavier/Glorot uniform: U(-sqrt(6 / (fan_in + fan_out)), +...).
    XavierUniform {
        fan_in: usize,
        fan_out: usize,
    },
    /// U(-bound, bound) (PyTorch's GRU: bound = 1 / sqrt(hidden)).
    Uniform(f32),
    Zeros,
}

impl Init {
    fn sample(self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let bound = match self {
            Init::Zeros => return vec![0.0; n],
            Init::Uniform(b) => b,
            Init::XavierUniform { fan_in, fan_out } => (6.0 / (fan_in + fan_out) as f32).sqrt(),
        };
        (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
    }
}

/// Named parameters, in registration order (which is also the optimiser's order).
#[derive(Default)]
pub struct ParamStore {
    names: Vec<String>,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

/// A parameter's position in its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamId(pub usize);

/// The store's parameters as tape leaves for one step.
pub struct Bound {
    vars: Vec<Var>,
}

impl Bound {
    /// The tape variable of parameter `id`.
    pub fn var(&self, id: ParamId) -> Var {
        self.vars[id.0]
    }
    /// All variables, in store order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }
}

impl ParamStore {
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    /// Register and initialise a parameter.
    pub fn add(
        &mut self,
        gpu: &Gpu,
        name: &str,
        shape: &[usize],
        init: Init,
        rng: &mut impl Rng,
    ) -> Result<ParamId> {
        if self.index.contains_key(name) {
            return Err(Error::Invalid(format!(
                "parameter '{name}' registered twice"
            )));
        }
        let n = shape.iter().product();
        let t = Tensor::from_vec(gpu, shape, &init.sample(n, rng))?;
        self.index.insert(name.to_string(), self.names.len());
        self.names.push(name.to_string());
        self.tensors.push(t);
        Ok(ParamId(self.names.len() - 1))
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.names.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    /// Total number of values.
    pub fn num_values(&self) -> usize {
        self.tensors.iter().map(|t| t.len()).sum()
    }
    /// Names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// Tensors in order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }
    /// The tensor of parameter `id`.
    pub fn tensor(&self, id: ParamId) -> &Tensor {
        &self.tensors[id.0]
    }
    /// Look a parameter up by name.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.index.get(name).map(|i| ParamId(*i))
    }

    /// Put every parameter on `tape` as a leaf that wants its gradient (or, on a no-grad tape,
    /// as a constant).
    pub fn bind(&self, tape: &Tape) -> Bound {
        Bound {
            vars: self.tensors.iter().map(|t| tape.param(t)).collect(),
        }
    }

    /// Put every parameter on `tape` as a constant (frozen: no gradient).
    pub fn bind_frozen(&self, tape: &Tape) -> Bound {
        Bound {
            vars: self.tensors.iter().map(|t| tape.constant(t)).collect(),
        }
    }

    /// Read every parameter back (one submit).
    pub fn to_host(&self) -> Result<BTreeMap<String, HostTensor>> {
        let gpu = match self.tensors.first() {
            Some(t) => t.gpu().clone(),
            None => return Ok(BTreeMap::new()),
        };
        let bufs: Vec<_> = self.tensors.iter().map(|t| t.buf()).collect();
        let values = gpu.read_many(&bufs)?;
        let mut out = BTreeMap::new();
        for ((name, t), v) in self.names.iter().zip(&self.tensors).zip(values) {
            out.insert(name.clone(), HostTensor::new(t.shape().to_vec(), v)?);
        }
        Ok(out)
    }

    /// Overwrite every parameter from `map`, which must hold exactly our names and shapes
    /// (all mismatches are reported at once) and finite values.
    pub fn load_host(&self, map: &BTreeMap<String, HostTensor>) -> Result<()> {
        self.check_host(map)?;
        for (name, t) in self.names.iter().zip(&self.tensors) {
            t.gpu().write(t.buf(), &map[name].data)?;
        }
        Ok(())
    }

    /// Check names, shapes and finiteness without loading.
    pub fn check_host(&self, map: &BTreeMap<String, HostTensor>) -> Result<()> {
        let expected: Vec<(String, Vec<usize>)> = self
            .names
            .iter()
            .zip(&self.tensors)
            .map(|(n, t)| (n.clone(), t.shape().to_vec()))
            .collect();
        safetensors_io::expect_keys(map, &expected)?;
        safetensors_io::check_finite(map)?;
        Ok(())
    }

    /// Save to a safetensors file (atomically), with the spec's key names.
    pub fn save(&self, path: &Path) -> Result<()> {
        safetensors_io::save_safetensors(path, &self.to_host()?, None)?;
        Ok(())
    }
}

/// `nn.Linear` with PyTorch's layout: `weight [out, in]`, `bias [out]`.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub weight: ParamId,
    pub bias: ParamId,
}

impl Linear {
    /// Register `{name}.weight` (Xavier uniform) and `{name}.bias` (zeros).
    pub fn new(
        store: &mut ParamStore,
        gpu: &Gpu,
        name: &str,
        inp: usize,
        out: usize,
        rng: &mut impl Rng,
    ) -> Result<Linear> {
        Ok(Linear {
            weight: store.add(
                gpu,
                &format!("{name}.weight"),
                &[out, inp],
                Init::XavierUniform {
                    fan_in: inp,
                    fan_out: out,
                },
                rng,
            )?,
            bias: store.add(gpu, &format!("{name}.bias"), &[out], Init::Zeros, rng)?,
        })
    }

    /// `act(x W^T + b)` (one fused dispatch).
    pub fn forward(&self, t: &Tape, p: &Bound, x: Var, act: Act) -> Result<Var> {
        ops::linear(t, x, p.var(self.weight), Some(p.var(self.bias)), act)
    }
}

/// A GRU cell with PyTorch `GRUCell`'s parameters: `{name}.weight_ih [3H, I]`,
/// `{name}.weight_hh [3H, H]`, `{name}.bias_ih [3H]`, `{name}.bias_hh [3H]`, all initialised
/// `U(-1/sqrt(H), 1/sqrt(H))` as PyTorch does.
#[derive(Clone, Copy, Debug)]
pub struct GruCell {
    pub weight_ih: ParamId,
    pub weight_hh: ParamId,
    pub bias_ih: ParamId,
    pub bias_hh: ParamId,
}

impl GruCell {
    /// Register the four parameters of a cell from `inp` to `hidden` units.
    pub fn new(
        store: &mut ParamStore,
        gpu: &Gpu,
        name: &str,
        inp: usize,
        hidden: usize,
        rng: &mut impl Rng,
    ) -> Result<GruCell> {
        let bound = Init::Uniform(1.0 / (hidden as f32).sqrt());
        let mut add = |suffix: &str, shape: &[usize]| {
            store.add(gpu, &format!("{name}.{suffix}"), shape, bound, rng)
        };
        Ok(GruCell {
            weight_ih: add("weight_ih", &[3 * hidden, inp])?,
            weight_hh: add("weight_hh", &[3 * hidden, hidden])?,
            bias_ih: add("bias_ih", &[3 * hidden])?,
            bias_hh: add("bias_hh", &[3 * hidden])?,
        })
    }

    /// `h' = GRUCell(x, h)`: two gate matmuls and one fused cell kernel.
    pub fn forward(&self, t: &Tape, p: &Bound, x: Var, h: Var) -> Result<Var> {
        ops::gru::gru_cell(
            t,
            x,
            h,
            p.var(self.weight_ih),
            p.var(self.weight_hh),
            p.var(self.bias_ih),
            p.var(self.bias_hh),
        )
    }
}

/// ELU hidden layers then a linear output: the spec's heads (`{name}.l0`, ..., `{name}.out`).
#[derive(Clone, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
    pub out: Linear,
}

impl Mlp {
    /// The hidden layers, then the output layer.
    pub fn linears(&self) -> Vec<&Linear> {
        self.layers
            .iter()
            .chain(std::iter::once(&self.out))
            .collect()
    }

    /// Register `{name}.l0..l{layers-1}` (width `units`, ELU) and `{name}.out`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        gpu: &Gpu,
        name: &str,
        inp: usize,
        units: usize,
        layers: usize,
        out: usize,
        rng: &mut impl Rng,
    ) -> Result<Mlp> {
        let mut ls = Vec::with_capacity(layers);
        let mut width = inp;
        for i in 0..layers {
            ls.push(Linear::new(
                store,
                gpu,
                &format!("{name}.l{i}"),
                width,
                units,
                rng,
            )?);
            width = units;
        }
        let out = Linear::new(store, gpu, &format!("{name}.out"), width, out, rng)?;
        Ok(Mlp { layers: ls, out })
    }

    fn layer_vars(&self, p: &Bound) -> Vec<(Var, Var)> {
        self.linears()
            .iter()
            .map(|l| (p.var(l.weight), p.var(l.bias)))
            .collect()
    }

    /// One `ops::mlp` (the same values as the chain of `Linear::forward`s, with the
    /// activation backward fused into the matmuls).
    pub fn forward(&self, t: &Tape, p: &Bound, x: Var) -> Result<Var> {
        ops::mlp(t, x, &self.layer_vars(p), Act::Elu)
    }

    /// [`Mlp::forward`], also returning the forward pass for [`Mlp::forward_from`].
    pub fn forward_keep(&self, t: &Tape, p: &Bound, x: Var) -> Result<(Var, MlpForward)> {
        ops::matmul::mlp_keep(t, x, &self.layer_vars(p), Act::Elu)
    }

    /// [`Mlp::forward`] of an `x` whose rows are the first rows of `fwd`'s input, with the same
    /// weights: records the op on `t` with no forward dispatch (`ops::matmul::mlp_from_forward`).
    pub fn forward_from(&self, t: &Tape, p: &Bound, x: Var, fwd: &MlpForward) -> Result<Var> {
        ops::matmul::mlp_from_forward(t, x, &self.layer_vars(p), fwd)
    }
}

/// Load a safetensors file into host tensors (a thin re-export for the model layer).
pub fn load_file(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    Ok(safetensors_io::load_safetensors(path)?.0)
}
