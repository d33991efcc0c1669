//! The tape: a micrograd-sized reverse-mode autodiff over GPU tensors.
//!
//! Each op computes its forward on the GPU and, when any input needs a gradient, records a
//! backward closure holding exactly the tensors it needs (its saved activations). `backward`
//! walks the tape in reverse, hands each closure the gradient of its output, and drops the
//! closure and the node's value as soon as it has run, so activations return to the buffer
//! pool during the backward pass rather than after it. Everything is only *recorded*: the
//! whole backward goes to the GPU in the same submit as the forward.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// A value on the tape (an index; cheap to copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);

impl Var {
    /// Position on the tape.
    pub fn index(self) -> usize {
        self.0
    }
}

type BackwardFn = Box<dyn FnOnce(&mut Grads, &Tensor) -> Result<()>>;

struct Node {
    value: Option<Tensor>,
    requires_grad: bool,
    is_leaf: bool,
    backward: Option<BackwardFn>,
}

/// Records ops for reverse-mode differentiation.
pub struct Tape {
    gpu: Gpu,
    nodes: RefCell<Vec<Node>>,
    grad_enabled: bool,
}

/// Gradients being accumulated during `backward`; handed to each op's backward closure.
pub struct Grads {
    grads: Vec<Option<Tensor>>,
    wants: Vec<bool>,
}

impl Grads {
    /// Does `v` need a gradient? Backward closures skip the work for inputs that do not.
    pub fn wants(&self, v: Var) -> bool {
        self.wants[v.0]
    }

    /// Add `g` to the gradient of `v` (the first contribution is stored as is).
    pub fn add(&mut self, v: Var, g: Tensor) -> Result<()> {
        if !self.wants[v.0] {
            return Ok(());
        }
        match self.grads[v.0].take() {
            None => self.grads[v.0] = Some(g),
            Some(existing) => {
                if existing.len() != g.len() {
                    return Err(Error::Tape(format!(
                        "gradient of shape {:?} added to one of shape {:?}",
                        g.shape(),
                        existing.shape()
                    )));
                }
                // Another gradient may share this buffer (an op can pass its output gradient
                // to two inputs): then write the sum into a fresh buffer.
                let acc = if existing.is_unique() {
                    existing
                } else {
                    existing.deep_clone()?
                };
                acc.axpy_assign(1.0, &g)?;
                self.grads[v.0] = Some(acc);
            }
        }
        Ok(())
    }

    /// A buffer to write the gradient of `v` into, and whether it already holds a gradient
    /// (then the kernel must add to it, e.g. a matmul with `ACC`). Lets weight gradients summed
    /// over T time steps accumulate in place with no extra dispatch.
    pub fn target(&mut self, v: Var, shape: &[usize], gpu: &Gpu) -> Result<(Tensor, bool)> {
        match self.grads[v.0].take() {
            Some(existing) => {
                let t = if existing.is_unique() {
                    existing
                } else {
                    existing.deep_clone()?
                };
                self.grads[v.0] = Some(t.clone());
                Ok((t, true))
            }
            None => {
                let t = Tensor::empty(gpu, shape)?;
                self.grads[v.0] = Some(t.clone());
                Ok((t, false))
            }
        }
    }
}

impl Grads {
    /// [`Grads::target`] for a `v` that wants a gradient, `None` otherwise: the usual first
    /// line of a backward closure with several inputs.
    pub fn wanted_target(
        &mut self,
        v: Var,
        shape: &[usize],
        gpu: &Gpu,
    ) -> Result<Option<(Tensor, bool)>> {
        if self.wants(v) {
            self.target(v, shape, gpu).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Gradients of the leaves after `backward`.
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// The gradient of leaf `v`, if it received one.
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }
    /// Take the gradient of `v` out.
    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}

impl Tape {
    /// A tape that records backward closures.
    pub fn new(gpu: &Gpu) -> Tape {
        Tape {
            gpu: gpu.clone(),
            nodes: RefCell::new(Vec::new()),
            grad_enabled: true,
        }
    }

    /// A tape for inference and imagination: nothing is saved for a backward pass.
    pub fn no_grad(gpu: &Gpu) -> Tape {
        Tape {
            grad_enabled: false,
            ..Tape::new(gpu)
        }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Is this tape recording gradients?
    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    fn push(&self, node: Node) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        Var(nodes.len() - 1)
    }

    /// A leaf; `requires_grad` makes `backward` return its gradient (a parameter). The value
    /// takes the tape's device handle, so every op on the tape runs the tape's kernel choices.
    pub fn leaf(&self, value: Tensor, requires_grad: bool) -> Var {
        self.push(Node {
            value: Some(value.on(&self.gpu)),
            requires_grad: requires_grad && self.grad_enabled,
            is_leaf: true,
            backward: None,
        })
    }

    /// A parameter: a leaf whose gradient is wanted.
    pub fn param(&self, value: &Tensor) -> Var {
        self.leaf(value.clone(), true)
    }

    /// An input or constant: a leaf without gradient.
    pub fn constant(&self, value: &Tensor) -> Var {
        self.leaf(value.clone(), false)
    }

    /// Stop-gradient: the same value as a new leaf that blocks gradients.
    pub fn detach(&self, v: Var) -> Var {
        let value = self.value(v);
        self.leaf(value, false)
    }

    /// Does `v` carry gradient?
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes.borrow()[v.0].requires_grad
    }

    /// The value of `v` (shares the buffer).
    pub fn value(&self, v: Var) -> Tensor {
        self.nodes.borrow()[v.0]
            .value
            .clone()
            .expect("value of a node freed by backward")
    }

    /// The shape of `v`.
    pub fn shape(&self, v: Var) -> Vec<usize> {
        self.nodes.borrow()[v.0]
            .value
            .as_ref()
            .map(|t| t.shape().to_vec())
            .unwrap_or_default()
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record an op's output. `backward` receives the output's gradient and adds the inputs'
    /// gradients to `Grads`; it is dropped at once (freeing what it saved) when no input needs
    /// a gradient.
    pub fn record(
        &self,
        value: Tensor,
        inputs: &[Var],
        backward: impl FnOnce(&mut Grads, &Tensor) -> Result<()> + 'static,
    ) -> Var {
        let requires_grad = self.grad_enabled && inputs.iter().any(|v| self.requires_grad(*v));
        self.push(Node {
            value: Some(value),
            requires_grad,
            is_leaf: false,
            backward: if requires_grad {
                Some(Box::new(backward))
            } else {
                None
            },
        })
    }

    /// Reverse pass from a scalar `loss` (seed gradient 1).
    pub fn backward(self, loss: Var) -> Result<Gradients> {
        let shape = self.shape(loss);
        if shape.iter().product::<usize>() != 1 {
            return Err(Error::Tape(format!(
                "backward needs a scalar loss, got shape {shape:?} (use backward_with)"
            )));
        }
        let seed = Tensor::full(&self.gpu, &shape, 1.0)?;
        self.backward_with(loss, seed)
    }

    /// Reverse pass from `out` with an explicit output gradient `seed` (same shape).
    pub fn backward_with(self, out: Var, seed: Tensor) -> Result<Gradients> {
        if seed.len() != self.value(out).len() {
            return Err(Error::Tape(format!(
                "seed gradient of shape {:?} for an output of shape {:?}",
                seed.shape(),
                self.shape(out)
            )));
        }
        let mut nodes = self.nodes.into_inner();
        let n = nodes.len();
        let mut grads = Grads {
            grads: vec![None; n],
            wants: nodes.iter().map(|n| n.requires_grad).collect(),
        };
        if !grads.wants[out.0] {
            return Err(Error::Tape(
                "the loss does not depend on anything that requires a gradient".into(),
            ));
        }
        grads.grads[out.0] = Some(seed);
        let mut leaf_grads: Vec<Option<Tensor>> = vec![None; n];
        for i in (0..=out.0).rev() {
            let node = std::mem::replace(
                &mut nodes[i],
                Node {
                    value: None,
                    requires_grad: false,
                    is_leaf: true,
                    backward: None,
                },
            );
            let g = grads.grads[i].take();
            if node.is_leaf {
                leaf_grads[i] = g;
                continue;
            }
            if let (Some(bw), Some(g)) = (node.backward, g) {
                bw(&mut grads, &g)?;
            }
            // The node's value and the closure's saved tensors drop here: their buffers go
            // back to the pool while the rest of the backward is still being recorded.
        }
        Ok(Gradients { grads: leaf_grads })
    }
}
