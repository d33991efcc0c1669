//! A GPU tensor: a row-major shape over a pooled f32 buffer. Cloning shares the buffer.

use crate::gpu::pipelines::{kernel_sig, KernelSig};
use std::sync::Arc;

use crate::error::{shape_err, Result};
use crate::gpu::{Gpu, GpuBuffer};

// The kernels this module dispatches: entry points and the storage buffers they bind, in order.

/// `elementwise::axpy`.
pub const AXPY: KernelSig = kernel_sig!(
    ElementwiseParams,
    "elementwise",
    "axpy",
    [],
    ["in1", "out4"]
);

/// Row-major f32 tensor on the GPU.
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    shape: Vec<usize>,
    buf: Arc<GpuBuffer>,
}

impl Tensor {
    /// Upload `data` with `shape`.
    pub fn from_vec(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return shape_err(
                "Tensor::from_vec",
                format!("shape {shape:?} holds {n} values, got {}", data.len()),
            );
        }
        Ok(Tensor {
            gpu: gpu.clone(),
            shape: shape.to_vec(),
            buf: Arc::new(gpu.upload(data)?),
        })
    }

    /// A zero tensor.
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor {
            gpu: gpu.clone(),
            shape: shape.to_vec(),
            buf: Arc::new(gpu.zeros(n)?),
        })
    }

    /// A tensor with undefined contents, for a kernel to fill.
    pub fn empty(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor {
            gpu: gpu.clone(),
            shape: shape.to_vec(),
            buf: Arc::new(gpu.alloc(n)?),
        })
    }

    /// A tensor filled with `value`.
    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        Tensor::from_vec(gpu, shape, &vec![value; n])
    }

    /// The device this tensor lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements (the buffer's, or fewer for a view of its leading rows).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// True for a tensor without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size of the last axis (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
    /// Number of rows when viewed as `[rows, last_dim]`.
    pub fn rows(&self) -> usize {
        self.len() / self.last_dim().max(1)
    }
    /// The pooled buffer.
    pub fn buf(&self) -> &GpuBuffer {
        &self.buf
    }
    /// True when no other tensor shares this buffer (so it may be written in place).
    pub fn is_unique(&self) -> bool {
        Arc::strong_count(&self.buf) == 1
    }

    /// The first `rows` rows of the `[rows(), last_dim()]` view, as a `[rows, last_dim()]`
    /// tensor on the same buffer (no copy). Only for ops that index by shape and bind row
    /// ranges (matmuls, copies): `buf().whole()` still spans the rows after these.
    pub(crate) fn leading_rows(&self, rows: usize) -> Result<Tensor> {
        if rows > self.rows() {
            return shape_err("leading_rows", format!("{rows} rows of {:?}", self.shape));
        }
        Ok(Tensor {
            gpu: self.gpu.clone(),
            shape: vec![rows, self.last_dim()],
            buf: self.buf.clone(),
        })
    }

    /// The same tensor (same buffer) on `gpu`'s handle, whose kernel choices the ops on it then
    /// take (`gpu` must be a handle on this tensor's device).
    pub fn on(&self, gpu: &Gpu) -> Tensor {
        debug_assert!(gpu.same_device(&self.gpu), "a tensor moved across devices");
        Tensor {
            gpu: gpu.clone(),
            shape: self.shape.clone(),
            buf: self.buf.clone(),
        }
    }

    /// Same data, another shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return shape_err(
                "reshape",
                format!(
                    "cannot view {:?} ({} values) as {shape:?}",
                    self.shape,
                    self.len()
                ),
            );
        }
        Ok(Tensor {
            gpu: self.gpu.clone(),
            shape: shape.to_vec(),
            buf: self.buf.clone(),
        })
    }

    /// Read the values back (submits pending work and waits).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut v = self.gpu.read(&self.buf)?;
        v.truncate(self.len());
        Ok(v)
    }

    /// Read a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.len() != 1 {
            return shape_err("to_scalar", format!("tensor of shape {:?}", self.shape));
        }
        Ok(self.to_vec()?[0])
    }

    /// A copy in a new buffer (recorded on the GPU).
    pub fn deep_clone(&self) -> Result<Tensor> {
        let out = Tensor::empty(&self.gpu, &self.shape)?;
        self.gpu.copy(&self.buf, 0, out.buf(), 0, self.len());
        Ok(out)
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

/// Parameter block of `shaders/elementwise.wgsl` (shared with `ops::elementwise`; the tape
/// needs `axpy` to accumulate gradients and sits below the ops layer).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ElementwiseParams {
    pub n: u32,
    pub la: u32,
    pub lb: u32,
    pub n_out: u32,
    pub alpha: f32,
    pub beta: f32,
}

impl Tensor {
    /// `self += alpha * x`, recorded in place (used to accumulate gradients).
    pub fn axpy_assign(&self, alpha: f32, x: &Tensor) -> Result<()> {
        if x.len() != self.len() {
            return shape_err("axpy", format!("{:?} += {:?}", self.shape, x.shape));
        }
        let k = self.gpu.kernel(&AXPY, &[])?;
        let len = self.len();
        let per = self.gpu.rows_per_binding("axpy", len, &[1, 1], &[])?;
        for first in (0..len).step_by(per) {
            let n = per.min(len - first);
            let p = ElementwiseParams {
                n: n as u32,
                alpha,
                ..Default::default()
            };
            self.gpu.dispatch_ranges(
                &k,
                &p,
                &[x.buf().range(first, n), self.buf().range(first, n)],
                self.gpu.grid_1d(n, crate::gpu::WG_1D),
            );
        }
        Ok(())
    }
}
