//! Tensors and autodiff: [`Tensor`] (a shape over a pooled GPU buffer), the [`Tape`] that
//! records ops and replays their hand-written backward kernels, and [`gradcheck`].

pub mod gradcheck;
pub mod tape;
#[allow(clippy::module_inception)]
pub(crate) mod tensor;

pub use gradcheck::{gradcheck, GradcheckOptions, GradcheckReport};
pub use tape::{Gradients, Grads, Tape, Var};
pub use tensor::Tensor;
