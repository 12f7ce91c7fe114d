//! NCCL collectives on CUDA tensors (feature `cuda`), through cudarc's dynamically loaded
//! `libnccl`. Rank 0 creates the NCCL unique id and shares it through the TCP store; every rank
//! then joins the communicator on its device's stream, so collectives are ordered with the
//! kernels that produce and consume the tensors.
//!
//! cudarc panics when a library it needs is missing, so [`NcclComm::connect`] first checks the
//! driver, NVRTC and `libnccl` (`is_culib_present`) and returns a one-line error instead.
//! Host tensors are staged through the device (the bucketed gradient all-reduce packs on the
//! host), so any [`Communicator`] caller works unchanged.
//!
//! Dead peers: NCCL itself blocks in a collective whose peer died; the rendezvous (store) part
//! names missing ranks, and `NCCL_DEBUG=INFO` shows NCCL's own view (see the README runbook).

use half::{bf16, f16};
use kernels::cudarc::driver::DeviceRepr;
use kernels::cudarc::nccl::{self, NcclType, ReduceOp};

use super::store::{Rendezvous, StoreClient};
use super::{CommError, Communicator};
use crate::cuda::{device, CudaDevice};
use crate::{DType, Device, Tensor};

/// An NCCL communicator, used from one thread at a time (`&mut self` on every collective).
struct Handle(nccl::Comm);

// SAFETY: an NCCL communicator may be used from any thread as long as calls are not
// concurrent; every use goes through `&mut NcclComm`.
unsafe impl Send for Handle {}

/// One rank of an NCCL group on device `cuda:<ordinal>`.
pub struct NcclComm {
    comm: Handle,
    rank: usize,
    world: usize,
    ordinal: usize,
    dev: &'static CudaDevice,
}

/// One line saying why NCCL cannot be used here, or None.
pub fn unavailable_reason() -> Option<String> {
    if let Some(why) = kernels::context::unavailable_reason() {
        return Some(why);
    }
    // SAFETY: only tries to dlopen libnccl by its candidate names.
    if !unsafe { nccl::sys::is_culib_present() } {
        return Some("no NCCL (libnccl.so.2 not found on LD_LIBRARY_PATH)".into());
    }
    None
}

fn nccl_err(op: &'static str, rank: usize) -> impl Fn(nccl::result::NcclError) -> CommError {
    move |e| CommError::Backend {
        op,
        rank,
        msg: format!(
            "NCCL error {:?} (rerun with NCCL_DEBUG=INFO for NCCL's reason)",
            e.0
        ),
    }
}

impl NcclComm {
    /// Joins the group `name` of `world` ranks on `cuda:<ordinal>` (usually `LOCAL_RANK`);
    /// the unique id travels through `store`.
    pub fn connect(
        store: &mut StoreClient,
        world: usize,
        ordinal: usize,
        name: &str,
    ) -> Result<Self, CommError> {
        Self::connect_as(store, store.rank(), world, ordinal, name)
    }

    /// Joins the group `name` as `rank` of `world` (a sub-group of the store's job): the
    /// group's rank 0 publishes the group's own unique id under `name`.
    pub(crate) fn connect_as(
        store: &mut StoreClient,
        rank: usize,
        world: usize,
        ordinal: usize,
        name: &str,
    ) -> Result<Self, CommError> {
        if let Some(why) = unavailable_reason() {
            return Err(CommError::Backend {
                op: "nccl init",
                rank,
                msg: why,
            });
        }
        let dev = device(ordinal).map_err(|e| CommError::Backend {
            op: "nccl init",
            rank,
            msg: e.to_string(),
        })?;
        let key = format!("nccl/{name}/id");
        let id = if rank == 0 {
            let id = nccl::Id::new().map_err(nccl_err("nccl unique id", rank))?;
            let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
            store.set(&key, &bytes)?;
            id
        } else {
            let bytes = store.get(&key)?;
            let mut internal = [0 as std::ffi::c_char; 128];
            if bytes.len() != internal.len() {
                return Err(CommError::Rendezvous {
                    rank,
                    msg: format!("NCCL unique id of {} bytes, expected 128", bytes.len()),
                });
            }
            internal
                .iter_mut()
                .zip(&bytes)
                .for_each(|(d, &b)| *d = b as std::ffi::c_char);
            nccl::Id::uninit(internal)
        };
        let comm = nccl::Comm::from_rank(dev.gpu.stream().clone(), rank, world, id)
            .map_err(nccl_err("nccl init", rank))?;
        Ok(NcclComm {
            comm: Handle(comm),
            rank,
            world,
            ordinal,
            dev,
        })
    }

    /// The group over a joined rendezvous, on `cuda:<LOCAL_RANK>`.
    pub fn from_rendezvous(rv: &mut Rendezvous, name: &str) -> Result<Self, CommError> {
        let (world, local) = (rv.env.world_size, rv.env.local_rank);
        Self::connect(&mut rv.store, world, local, name)
    }

    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    /// Runs `f` on a device copy of a host tensor (then copies back when `write`), or on the
    /// tensor itself when it is already on this device.
    fn on_device(
        &mut self,
        op: &'static str,
        t: &mut Tensor,
        write: bool,
        f: impl FnOnce(&mut Self, &mut Tensor) -> Result<(), CommError>,
    ) -> Result<(), CommError> {
        super::check_dtype(op, self.rank, t)?;
        match t.device() {
            Device::Cuda(i) if *i == self.ordinal => f(self, t),
            Device::Cpu => {
                let mut d = t.to_device(&self.device())?;
                f(self, &mut d)?;
                if write {
                    let host = d.to_device(&Device::Cpu)?.cast(DType::F32)?;
                    super::store(op, self.rank, t, &host.to_f32_vec()?)?;
                }
                Ok(())
            }
            other => Err(CommError::Mismatch {
                op,
                rank: self.rank,
                msg: format!(
                    "tensor on {other:?}, this communicator is on cuda:{}",
                    self.ordinal
                ),
            }),
        }
    }

    fn same_dtype(&self, op: &'static str, a: &Tensor, b: &Tensor) -> Result<(), CommError> {
        if a.dtype() != b.dtype() {
            return Err(CommError::Mismatch {
                op,
                rank: self.rank,
                msg: format!(
                    "input {:?} and output {:?} dtypes differ",
                    a.dtype(),
                    b.dtype()
                ),
            });
        }
        Ok(())
    }
}

/// Calls `$body` with `$T` bound to the element type of dtype `$d` (float dtypes only).
macro_rules! with_float {
    ($d:expr, $op:expr, $rank:expr, $T:ident => $body:expr) => {
        match $d {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::BF16 => {
                type $T = bf16;
                $body
            }
            DType::F16 => {
                type $T = f16;
                $body
            }
            dtype => Err(CommError::DType {
                op: $op,
                rank: $rank,
                dtype,
            }),
        }
    };
}

fn in_place<T: NcclType + DeviceRepr>(
    c: &NcclComm,
    op: &'static str,
    t: &mut Tensor,
    run: impl FnOnce(
        &nccl::Comm,
        &mut kernels::cudarc::driver::CudaViewMut<'_, T>,
    ) -> Result<nccl::result::NcclStatus, nccl::result::NcclError>,
) -> Result<(), CommError> {
    let n = t.numel();
    let (s, off) = t.cuda_storage_mut(op)?;
    // SAFETY: `T` is the storage's element type (dispatched on the tensor's dtype).
    let mut all = unsafe { s.view_mut::<T>() }?;
    let mut v = all.slice_mut(off..off + n);
    run(&c.comm.0, &mut v).map_err(nccl_err(op, c.rank))?;
    Ok(())
}

fn out_of_place<T: NcclType + DeviceRepr>(
    c: &NcclComm,
    op: &'static str,
    input: &Tensor,
    output: &mut Tensor,
    run: impl FnOnce(
        &nccl::Comm,
        &kernels::cudarc::driver::CudaView<'_, T>,
        &mut kernels::cudarc::driver::CudaViewMut<'_, T>,
    ) -> Result<nccl::result::NcclStatus, nccl::result::NcclError>,
) -> Result<(), CommError> {
    let (ni, no) = (input.numel(), output.numel());
    let (si, oi) = input.cuda_storage(op)?;
    // SAFETY: as in `in_place`; input and output are distinct tensors.
    let src = unsafe { si.view::<T>(oi, ni) }?;
    let (so, oo) = output.cuda_storage_mut(op)?;
    let mut all = unsafe { so.view_mut::<T>() }?;
    let mut dst = all.slice_mut(oo..oo + no);
    run(&c.comm.0, &src, &mut dst).map_err(nccl_err(op, c.rank))?;
    Ok(())
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, t: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "all_reduce_sum";
        self.on_device(OP, t, true, |c, d| {
            with_float!(d.dtype(), OP, c.rank, T => in_place::<T>(c, OP, d, |comm, v| {
                comm.all_reduce_in_place(v, &ReduceOp::Sum)
            }))
        })
    }

    fn all_gather(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "all_gather";
        super::check_gather(OP, self.rank, self.world, input, output)?;
        self.same_dtype(OP, input, output)?;
        let mut inp = input.to_device(&self.device())?;
        self.on_device(OP, output, true, |c, out| {
            let inp = &mut inp;
            with_float!(out.dtype(), OP, c.rank, T => out_of_place::<T>(c, OP, inp, out, |comm, s, d| {
                comm.all_gather(s, d)
            }))
        })
    }

    fn reduce_scatter_sum(&mut self, input: &Tensor, output: &mut Tensor) -> Result<(), CommError> {
        const OP: &str = "reduce_scatter_sum";
        super::check_gather(OP, self.rank, self.world, output, input)?;
        self.same_dtype(OP, input, output)?;
        let mut inp = input.to_device(&self.device())?;
        self.on_device(OP, output, true, |c, out| {
            let inp = &mut inp;
            with_float!(out.dtype(), OP, c.rank, T => out_of_place::<T>(c, OP, inp, out, |comm, s, d| {
                comm.reduce_scatter(s, d, &ReduceOp::Sum)
            }))
        })
    }

    fn broadcast(&mut self, t: &mut Tensor, root: usize) -> Result<(), CommError> {
        const OP: &str = "broadcast";
        if root >= self.world {
            return Err(CommError::Mismatch {
                op: OP,
                rank: self.rank,
                msg: format!("root {root} is not a rank of {}", self.world),
            });
        }
        self.on_device(OP, t, true, |c, d| {
            with_float!(d.dtype(), OP, c.rank, T => in_place::<T>(c, OP, d, |comm, v| {
                comm.broadcast_in_place(v, root as i32)
            }))
        })
    }

    fn barrier(&mut self) -> Result<(), CommError> {
        const OP: &str = "barrier";
        let mut one = Tensor::zeros(&[1], DType::F32, &self.device())?;
        in_place::<f32>(self, OP, &mut one, |comm, v| {
            comm.all_reduce_in_place(v, &ReduceOp::Sum)
        })?;
        self.dev
            .gpu
            .stream()
            .synchronize()
            .map_err(|e| CommError::Backend {
                op: OP,
                rank: self.rank,
                msg: format!("{e:?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::StoreServer;
    use std::time::Duration;

    /// Without a GPU or libnccl: a one-line error, not a panic. With them: a one-rank group
    /// whose collectives are identities, on device and host tensors.
    #[test]
    fn nccl_gated_or_one_rank_identity() {
        let server = StoreServer::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().to_string();
        let mut store = StoreClient::connect(&addr, 0, Duration::from_secs(5)).unwrap();
        let got = NcclComm::connect(&mut store, 1, 0, "t");
        match unavailable_reason() {
            Some(why) => {
                eprintln!("skipping the NCCL run: {why}");
                let e = got.err().expect("no NCCL, no communicator").to_string();
                assert!(e.contains(&why) && !e.contains('\n'), "{e}");
            }
            None => {
                let mut c = got.unwrap();
                let x = vec![1f32, -2.5, 3.0];
                let mut host = Tensor::from_vec(x.clone(), &[3]).unwrap();
                c.all_reduce_sum(&mut host).unwrap();
                assert_eq!(host.to_f32_vec().unwrap(), x);
                let mut dev = Tensor::from_vec(x.clone(), &[3])
                    .unwrap()
                    .to_device(&Device::Cuda(0))
                    .unwrap();
                c.broadcast(&mut dev, 0).unwrap();
                let mut g = Tensor::zeros(&[3], DType::F32, &Device::Cuda(0)).unwrap();
                c.all_gather(&dev, &mut g).unwrap();
                assert_eq!(g.to_f32_vec().unwrap(), x);
                c.barrier().unwrap();
            }
        }
    }
}
