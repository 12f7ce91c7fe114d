//! The gradient all-reduce overlapped with backward (PyTorch DDP's scheme).
//!
//! The model's backward tells a [`GradHook`] when a part of the gradients is final (the head,
//! then each layer from the last, then the embedding). The hook packs those tensors into
//! flat buckets in that order and hands every full bucket to a communication thread, which
//! all-reduces it while the backward continues; after the backward the caller flushes the
//! last partial bucket, waits for the thread and copies the sums back.
//!
//! The result is bit-identical to [`all_reduce_grads_bucketed`](super::all_reduce_grads_bucketed):
//! each element is still reduced exactly once and the CPU groups sum it in rank order, whichever
//! bucket it travels in. Every rank packs the same tensors in the same order (the backward is
//! deterministic), so the ranks' collectives stay matched. Cost: the buckets in flight are a
//! second copy of the gradients until the sums are unpacked.

use std::sync::mpsc;
use std::time::Instant;

use model::model::{GradHook, GradReady};
use model::{LlamaParams, ModelError};
use runtime::comm::Communicator;
use runtime::{DType, Tensor};

use super::{DpError, SyncStats};

/// Canonical indices (as in [`LlamaParams::tensors`]) of the tensors `part` makes final.
fn part_tensors(
    grads: &LlamaParams,
    n_tensors: usize,
    part: GradReady,
) -> Result<Vec<usize>, DpError> {
    let layers = grads.layers.len();
    let head = grads.lm_head.is_some() as usize;
    let per_layer = (n_tensors - 2 - head) / layers.max(1);
    let norm = 1 + layers * per_layer;
    Ok(match part {
        GradReady::Embed => vec![0],
        GradReady::Head => (norm..norm + 1 + head).collect(),
        GradReady::Layer(l) if l < layers => (1 + l * per_layer..1 + (l + 1) * per_layer).collect(),
        GradReady::Layer(l) => {
            return Err(DpError::Invalid(format!(
                "backward reported layer {l} of a {layers}-layer model"
            )))
        }
    })
}

/// `(tensor index, offset, length)` pieces of one bucket, in packing order.
type Pieces = Vec<(usize, usize, usize)>;

/// The [`GradHook`] of an overlapped sync: packs final gradients into buckets and sends each
/// full one to the communication thread.
struct Packer {
    cap: usize,
    n_tensors: usize,
    /// Elements not yet packed (sizes the next bucket's allocation).
    left: usize,
    done: Vec<bool>,
    buf: Vec<f32>,
    pieces: Pieces,
    /// Pieces of every bucket sent, in sending order (the thread answers in that order).
    sent: Vec<Pieces>,
    tx: Option<mpsc::Sender<Vec<f32>>>,
    /// Why packing stopped: the backward only sees a generic error, the caller reports this.
    failed: Option<DpError>,
}

impl Packer {
    fn push(&mut self, grads: &LlamaParams, idx: &[usize]) -> Result<(), DpError> {
        let tensors = grads.tensors();
        for &i in idx {
            if std::mem::replace(&mut self.done[i], true) {
                return Err(DpError::Invalid(format!(
                    "backward reported gradient {i} of shape {:?} final twice",
                    tensors[i].shape()
                )));
            }
            let src = tensors[i].as_slice::<f32>()?;
            let mut off = 0;
            while off < src.len() {
                if self.buf.capacity() == 0 {
                    self.buf = Vec::with_capacity(self.cap.min(self.left));
                }
                let n = (self.cap - self.buf.len()).min(src.len() - off);
                self.buf.extend_from_slice(&src[off..off + n]);
                self.pieces.push((i, off, n));
                (off, self.left) = (off + n, self.left - n);
                if self.buf.len() == self.cap {
                    self.flush()?;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DpError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let stopped = || DpError::Invalid("the gradient all-reduce thread stopped".into());
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        tx.send(std::mem::take(&mut self.buf))
            .map_err(|_| stopped())?;
        self.sent.push(std::mem::take(&mut self.pieces));
        Ok(())
    }

    /// Packs what the backward did not report (in canonical order), sends the last bucket and
    /// closes the channel so the thread ends after it.
    fn finish(&mut self, grads: &LlamaParams) -> Result<(), DpError> {
        let rest: Vec<usize> = (0..self.n_tensors).filter(|&i| !self.done[i]).collect();
        self.push(grads, &rest)?;
        self.flush()?;
        self.tx = None;
        Ok(())
    }
}

impl GradHook for Packer {
    fn ready(&mut self, grads: &LlamaParams, part: GradReady) -> model::Result<()> {
        let r = part_tensors(grads, self.n_tensors, part).and_then(|idx| self.push(grads, &idx));
        r.map_err(|e| {
            let msg = format!("data-parallel gradient sync: {e}");
            self.failed.get_or_insert(e);
            ModelError::Invalid(msg)
        })
    }
}

/// The communication thread: all-reduces buckets in arrival order until the channel closes.
fn reduce_all(
    comm: &mut dyn Communicator,
    rx: mpsc::Receiver<Vec<f32>>,
) -> Result<Vec<Tensor>, DpError> {
    let mut out = Vec::new();
    for buf in rx {
        let n = buf.len();
        let mut t = Tensor::from_vec(buf, &[n])?;
        comm.all_reduce_sum(&mut t)?;
        out.push(t);
    }
    Ok(out)
}

/// Runs `backward` with a hook that all-reduces final gradients on a second thread, then
/// waits for the sums and writes them into `grads`. Returns the backward's result, what the
/// sync moved and the seconds the caller waited for it after the backward.
pub(super) fn backward_and_reduce<R, E: From<DpError>>(
    comm: &mut dyn Communicator,
    grads: &mut LlamaParams,
    bucket_bytes: usize,
    backward: impl FnOnce(&mut LlamaParams, &mut dyn GradHook) -> Result<R, E>,
) -> Result<(R, SyncStats, f64), E> {
    let cap = super::bucket_elements(bucket_bytes)?;
    let (n_tensors, total) = {
        let ts = grads.tensors();
        for t in &ts {
            super::check_f32(t)?;
        }
        (ts.len(), ts.iter().map(|t| t.numel()).sum::<usize>())
    };
    let (tx, rx) = mpsc::channel();
    let mut packer = Packer {
        cap,
        n_tensors,
        left: total,
        done: vec![false; n_tensors],
        buf: Vec::new(),
        pieces: Vec::new(),
        sent: Vec::new(),
        tx: Some(tx),
        failed: None,
    };
    std::thread::scope(|s| {
        let worker = s.spawn(move || reduce_all(comm, rx));
        let out = backward(grads, &mut packer);
        let t0 = Instant::now();
        let finished = match (&out, packer.failed.take()) {
            (_, Some(e)) => Err(e),
            (Ok(_), None) => packer.finish(grads),
            (Err(_), None) => Ok(()),
        };
        // Closes the channel even when the backward failed, so the thread cannot wait forever.
        packer.tx = None;
        let reduced = worker.join().unwrap_or_else(|_| {
            Err(DpError::Invalid(
                "the gradient all-reduce thread panicked".into(),
            ))
        });
        // The thread's error is the root cause (a dead peer): the backward and the packer only
        // saw the thread stop.
        let reduced = reduced?;
        finished?;
        let r = out?;
        if reduced.len() != packer.sent.len() {
            return Err(DpError::Invalid(format!(
                "{} gradient buckets sent, {} reduced",
                packer.sent.len(),
                reduced.len()
            ))
            .into());
        }
        let mut dst = grads.tensors_mut();
        for (bucket, pieces) in reduced.iter().zip(&packer.sent) {
            let src = bucket.as_slice::<f32>().map_err(DpError::from)?;
            let mut at = 0;
            for &(i, o, n) in pieces {
                dst[i].as_mut_slice::<f32>().map_err(DpError::from)?[o..o + n]
                    .copy_from_slice(&src[at..at + n]);
                at += n;
            }
        }
        let stats = SyncStats {
            collectives: reduced.len(),
            elements: total,
            bytes: total * DType::F32.size_in_bytes(),
        };
        Ok((r, stats, t0.elapsed().as_secs_f64()))
    })
}
