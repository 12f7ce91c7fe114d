//! Elementwise ops and reductions.

use super::{check_float, dispatch};
use crate::{Error, Result, Tensor};

fn same_numel(op: &'static str, pairs: &[(&str, &Tensor)]) -> Result<()> {
    let (n0, t0) = pairs[0];
    for (n, t) in &pairs[1..] {
        if t.shape() != t0.shape() {
            return Err(Error::Shape {
                op,
                msg: format!("`{n0}` {:?} vs `{n}` {:?}", t0.shape(), t.shape()),
            });
        }
    }
    for (n, t) in pairs {
        check_float(op, n, t)?;
    }
    Ok(())
}

/// `out = a + b`, all float tensors of one shape.
pub fn add(out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
    same_numel("add", &[("out", out), ("a", a), ("b", b)])?;
    dispatch("add", &[out, a, b])?.add(out, a, b)
}

/// `out = a * b` elementwise, all float tensors of one shape.
pub fn mul(out: &mut Tensor, a: &Tensor, b: &Tensor) -> Result<()> {
    same_numel("mul", &[("out", out), ("a", a), ("b", b)])?;
    dispatch("mul", &[out, a, b])?.mul(out, a, b)
}

/// `out = s * x`, float tensors of one shape.
pub fn scale(out: &mut Tensor, x: &Tensor, s: f32) -> Result<()> {
    same_numel("scale", &[("out", out), ("x", x)])?;
    dispatch("scale", &[out, x])?.scale(out, x, s)
}

/// `x *= s` in place.
pub fn scale_inplace(x: &mut Tensor, s: f32) -> Result<()> {
    check_float("scale_inplace", "x", x)?;
    dispatch("scale_inplace", &[x])?.scale_inplace(x, s)
}

/// `y += alpha * x` (accumulates into `y`), float tensors of one shape.
pub fn axpy(y: &mut Tensor, alpha: f32, x: &Tensor) -> Result<()> {
    same_numel("axpy", &[("y", y), ("x", x)])?;
    dispatch("axpy", &[y, x])?.axpy(y, alpha, x)
}

/// Sum of all elements (f64 accumulation) of a float tensor.
pub fn sum(x: &Tensor) -> Result<f64> {
    check_float("sum", "x", x)?;
    dispatch("sum", &[x])?.sum(x)
}

/// Mean of all elements; an empty tensor is an error.
pub fn mean(x: &Tensor) -> Result<f64> {
    if x.numel() == 0 {
        return Err(Error::Shape {
            op: "mean",
            msg: format!("empty tensor {:?}", x.shape()),
        });
    }
    Ok(sum(x)? / x.numel() as f64)
}

/// Sum of squares of all elements (f64 accumulation).
pub fn sum_squares(x: &Tensor) -> Result<f64> {
    check_float("sum_squares", "x", x)?;
    dispatch("sum_squares", &[x])?.sum_squares(x)
}

/// Global L2 norm `sqrt(sum_i sum(t_i^2))` over many float tensors (gradient clipping).
pub fn global_l2_norm(ts: &[&Tensor]) -> Result<f64> {
    let mut acc = 0.0;
    for t in ts {
        acc += sum_squares(t)?;
    }
    Ok(acc.sqrt())
}
