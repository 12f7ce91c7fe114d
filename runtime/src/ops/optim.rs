//! Optimizer step.

use super::{check_f32, check_float, check_shape, dispatch};
use crate::backend::{AdamWParams, AdamWTensors};
use crate::{Error, Result, Tensor};

/// One AdamW step in place (PyTorch `AdamW`, decoupled weight decay, bias correction):
/// `g = grad_scale * grad; p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;`
/// `p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)`.
///
/// `param` (the f32 master weights), `m`, `v`: F32, one shape; `grad`: float of that shape;
/// `copy`: optional BF16/F16/F32 tensor of that shape that receives the updated weights
/// (the low-precision copy used by the forward).
pub fn adamw_step(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    copy: Option<&mut Tensor>,
    p: &AdamWParams,
) -> Result<()> {
    const OP: &str = "adamw_step";
    check_f32(OP, "param", param)?;
    check_f32(OP, "m", m)?;
    check_f32(OP, "v", v)?;
    check_float(OP, "grad", grad)?;
    let shape = param.shape().to_vec();
    check_shape(OP, "grad", grad, &shape)?;
    check_shape(OP, "m", m, &shape)?;
    check_shape(OP, "v", v, &shape)?;
    if let Some(c) = &copy {
        check_float(OP, "copy", c)?;
        check_shape(OP, "copy", c, &shape)?;
    }
    if p.step == 0 {
        return Err(Error::Invalid {
            op: OP,
            msg: "step is 1-based; got 0".into(),
        });
    }
    let be = dispatch(OP, &[param, grad, m, v])?;
    let t = AdamWTensors {
        param,
        grad,
        m,
        v,
        copy,
    };
    be.adamw(t, p)
}
