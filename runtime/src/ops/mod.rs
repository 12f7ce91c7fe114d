//! Checked ops. Each function validates shapes, dtypes and devices (returning an `Err` that
//! names the op and the shapes), then dispatches to the backend of the tensors' device.
//!
//! Conventions for every op:
//! - all tensors are contiguous row-major; "`[N, C]`" means the last dim varies fastest;
//! - out-parameters (`out`, `dx`, ...) must have unique storage (see [`crate::Tensor`]) and the
//!   documented shape; they are **overwritten** unless the doc says "accumulated";
//! - "float" means F32, BF16 or F16 (math is done in f32; BF16/F16 outputs are rounded once);
//!   "index" means I32 or I64; saved statistics (`rstd`, `lse`, losses) are F32.

mod attention;
mod elementwise;
mod loss;
mod matmul;
mod nn;
mod optim;
pub(crate) mod ranges;

pub use attention::*;
pub use elementwise::*;
pub use loss::*;
pub use matmul::*;
pub use nn::*;
pub use optim::*;

use crate::backend::{backend_for, Backend};
use crate::{DType, Error, Result, Tensor};

pub(crate) fn dispatch(op: &'static str, ts: &[&Tensor]) -> Result<&'static dyn Backend> {
    let dev = *ts[0].device();
    for t in &ts[1..] {
        if *t.device() != dev {
            return Err(Error::Device {
                op,
                msg: format!("tensors on {:?} and {:?}", dev, t.device()),
            });
        }
    }
    backend_for(op, &dev)
}

pub(crate) fn check_float(op: &'static str, name: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::DType {
            op,
            got: t.dtype(),
            msg: format!("`{name}` {:?} must be F32, BF16 or F16", t.shape()),
        })
    }
}

pub(crate) fn check_f32(op: &'static str, name: &str, t: &Tensor) -> Result<()> {
    if t.dtype() == DType::F32 {
        Ok(())
    } else {
        Err(Error::DType {
            op,
            got: t.dtype(),
            msg: format!("`{name}` {:?} must be F32", t.shape()),
        })
    }
}

pub(crate) fn check_index(op: &'static str, name: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_int() {
        Ok(())
    } else {
        Err(Error::DType {
            op,
            got: t.dtype(),
            msg: format!("`{name}` {:?} must be I32 or I64", t.shape()),
        })
    }
}

pub(crate) fn check_shape(op: &'static str, name: &str, t: &Tensor, want: &[usize]) -> Result<()> {
    if t.shape() == want {
        Ok(())
    } else {
        Err(Error::Shape {
            op,
            msg: format!("`{name}` has shape {:?}, expected {want:?}", t.shape()),
        })
    }
}

pub(crate) fn check_rank(op: &'static str, name: &str, t: &Tensor, rank: usize) -> Result<()> {
    if t.rank() == rank {
        Ok(())
    } else {
        Err(Error::Shape {
            op,
            msg: format!("`{name}` has shape {:?}, expected rank {rank}", t.shape()),
        })
    }
}

/// Writes `x` converted to `out`'s dtype (any dtype pair; float->int truncates).
/// Shapes must have the same element count.
pub fn cast_into(out: &mut Tensor, x: &Tensor) -> Result<()> {
    const OP: &str = "cast";
    if out.numel() != x.numel() {
        return Err(Error::Shape {
            op: OP,
            msg: format!("out {:?} vs x {:?}", out.shape(), x.shape()),
        });
    }
    dispatch(OP, &[out, x])?.cast(out, x)
}

/// Copies `src` into rows `dst_row..dst_row + src.shape()[0]` (dim 0) of `dst`; both have the
/// same dtype and the same trailing dims.
pub fn copy_rows(dst: &mut Tensor, dst_row: usize, src: &Tensor) -> Result<()> {
    const OP: &str = "copy_rows";
    let ok = dst.rank() >= 1
        && src.rank() == dst.rank()
        && src.shape()[1..] == dst.shape()[1..]
        && dst_row + src.shape()[0] <= dst.shape()[0];
    if !ok {
        return Err(Error::Shape {
            op: OP,
            msg: format!(
                "src {:?} at row {dst_row} does not fit dst {:?}",
                src.shape(),
                dst.shape()
            ),
        });
    }
    if dst.dtype() != src.dtype() {
        return Err(Error::DType {
            op: OP,
            got: src.dtype(),
            msg: format!("dst is {:?}", dst.dtype()),
        });
    }
    dispatch(OP, &[dst, src])?.copy_rows(dst, dst_row, src)
}
