//! Bias-free linear layer `y = x @ W^T` with `W: [out, in]` (as `nn.Linear` stores it).
//! Inputs may have any leading dims; they are viewed as `[N, in]` rows.

use runtime::{ops, MatmulParams, Tensor};

use crate::error::Result;

/// Runs `f` with `t` viewed as `[rows, cols]`, restoring its shape afterwards (a view would
/// share storage and could not be written).
fn as_2d<R>(t: &mut Tensor, cols: usize, f: impl FnOnce(&mut Tensor) -> Result<R>) -> Result<R> {
    let shape = t.shape().to_vec();
    let rows = t.numel() / cols.max(1);
    t.reshape_mut(&[rows, cols])?;
    let r = f(t);
    t.reshape_mut(&shape)?;
    r
}

fn rows_view(x: &Tensor, cols: usize) -> Result<Tensor> {
    Ok(x.reshape(&[x.numel() / cols.max(1), cols])?)
}

/// `out = x @ w^T`, or `out += x @ w^T` when `accumulate` (a residual add for free).
pub fn forward(out: &mut Tensor, x: &Tensor, w: &Tensor, accumulate: bool) -> Result<()> {
    let (n, k) = (w.dim(0), w.dim(1));
    let x2 = rows_view(x, k)?;
    let p = MatmulParams {
        trans_b: true,
        beta: if accumulate { 1.0 } else { 0.0 },
        ..Default::default()
    };
    as_2d(out, n, |o| Ok(ops::matmul(o, &x2, w, &p)?))
}

/// Weight gradient `dw += dy^T @ x` and, when `dx` is given, the input gradient
/// `dx = dy @ w` (or `dx += dy @ w` when `accumulate_dx`).
pub fn backward(
    dx: Option<&mut Tensor>,
    dw: &mut Tensor,
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    accumulate_dx: bool,
) -> Result<()> {
    let (n, k) = (w.dim(0), w.dim(1));
    let dy2 = rows_view(dy, n)?;
    let x2 = rows_view(x, k)?;
    ops::matmul(
        dw,
        &dy2,
        &x2,
        &MatmulParams {
            trans_a: true,
            beta: 1.0,
            ..Default::default()
        },
    )?;
    if let Some(dx) = dx {
        let p = MatmulParams {
            beta: if accumulate_dx { 1.0 } else { 0.0 },
            ..Default::default()
        };
        as_2d(dx, k, |d| Ok(ops::matmul(d, &dy2, w, &p)?))?;
    }
    Ok(())
}
