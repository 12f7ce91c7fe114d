//! The in-process communicator: every collective against a serial computation for world sizes
//! 1..=4 on odd sizes, bit-identical results on every rank, and clear errors (naming the
//! missing rank) when a peer drops out or never arrives.

use std::time::{Duration, Instant};

use runtime::comm::{CommError, Communicator, ThreadComm, ThreadGroup};
use runtime::{DType, Rng, Tensor};

/// Runs `f` on every rank in its own thread; results in rank order.
fn run_ranks<R: Send>(comms: Vec<ThreadComm>, f: impl Fn(&mut ThreadComm) -> R + Sync) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = comms
            .into_iter()
            .map(|mut c| {
                let f = &f;
                s.spawn(move || f(&mut c))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rank thread panicked"))
            .collect()
    })
}

/// Rank `r`'s input: `n` values with magnitudes spread over orders of magnitude, so that the
/// summation order shows in the low bits.
fn input(rank: usize, n: usize) -> Vec<f32> {
    let mut rng = Rng::new(1000 + rank as u64);
    (0..n)
        .map(|i| {
            let scale = 10f32.powi((i % 7) as i32 - 3);
            (rng.below(2001) as f32 - 1000.0) * 1e-3 * scale
        })
        .collect()
}

fn serial_sum(world: usize, n: usize) -> Vec<f32> {
    let mut acc = input(0, n);
    for r in 1..world {
        acc.iter_mut().zip(input(r, n)).for_each(|(a, x)| *a += x);
    }
    acc
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

const SIZES: [usize; 3] = [1, 7, 1001];

#[test]
fn all_reduce_matches_serial_sum_bitwise_on_every_rank() {
    for world in 1..=4 {
        for n in SIZES {
            let out = run_ranks(ThreadGroup::new(world).unwrap(), |c| {
                let mut t = Tensor::from_vec(input(c.rank(), n), &[n]).unwrap();
                c.all_reduce_sum(&mut t).unwrap();
                t.to_f32_vec().unwrap()
            });
            let want = bits(&serial_sum(world, n));
            for (r, got) in out.iter().enumerate() {
                assert_eq!(bits(got), want, "world {world} n {n} rank {r}");
            }
        }
    }
}

#[test]
fn all_gather_concatenates_in_rank_order() {
    for world in 1..=4 {
        for n in SIZES {
            let out = run_ranks(ThreadGroup::new(world).unwrap(), |c| {
                let x = Tensor::from_vec(input(c.rank(), n), &[1, n]).unwrap();
                let mut y = Tensor::zeros(&[world, n], DType::F32, &runtime::Device::Cpu).unwrap();
                c.all_gather(&x, &mut y).unwrap();
                y.to_f32_vec().unwrap()
            });
            let want: Vec<f32> = (0..world).flat_map(|r| input(r, n)).collect();
            for (r, got) in out.iter().enumerate() {
                assert_eq!(bits(got), bits(&want), "world {world} n {n} rank {r}");
            }
        }
    }
}

#[test]
fn reduce_scatter_gives_each_rank_its_chunk_of_the_sum() {
    for world in 1..=4 {
        for n in SIZES {
            let out = run_ranks(ThreadGroup::new(world).unwrap(), |c| {
                let x = Tensor::from_vec(input(c.rank(), world * n), &[world * n]).unwrap();
                let mut y = Tensor::zeros(&[n], DType::F32, &runtime::Device::Cpu).unwrap();
                c.reduce_scatter_sum(&x, &mut y).unwrap();
                y.to_f32_vec().unwrap()
            });
            let full = serial_sum(world, world * n);
            for (r, got) in out.iter().enumerate() {
                assert_eq!(
                    bits(got),
                    bits(&full[r * n..(r + 1) * n]),
                    "world {world} n {n} rank {r}"
                );
            }
        }
    }
}

#[test]
fn broadcast_copies_the_root_to_every_rank() {
    for world in 1..=4 {
        for root in 0..world {
            let n = 13;
            let out = run_ranks(ThreadGroup::new(world).unwrap(), |c| {
                let mut t = Tensor::from_vec(input(c.rank(), n), &[n]).unwrap();
                c.broadcast(&mut t, root).unwrap();
                c.barrier().unwrap();
                t.to_f32_vec().unwrap()
            });
            for (r, got) in out.iter().enumerate() {
                assert_eq!(
                    bits(got),
                    bits(&input(root, n)),
                    "world {world} root {root} rank {r}"
                );
            }
        }
    }
}

#[test]
fn back_to_back_collectives_and_bf16() {
    // Many rounds without barriers in between: a fast rank must not overwrite a round a slow
    // rank is still reading.
    let world = 3;
    let out = run_ranks(ThreadGroup::new(world).unwrap(), |c| {
        let mut acc = Vec::new();
        for step in 0..50 {
            let mut t = Tensor::full(
                &[5],
                (c.rank() * 100 + step) as f64,
                DType::BF16,
                &runtime::Device::Cpu,
            )
            .unwrap();
            c.all_reduce_sum(&mut t).unwrap();
            acc.push(t.to_f32_vec().unwrap()[0]);
        }
        acc
    });
    for (r, got) in out.iter().enumerate() {
        for (step, v) in got.iter().enumerate() {
            let want = half::bf16::from_f32((300 + 3 * step) as f32).to_f32();
            assert_eq!(*v, want, "rank {r} step {step}");
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let out = run_ranks(
        ThreadGroup::with_timeout(2, Duration::from_millis(300)).unwrap(),
        |c| {
            let mut ids = Tensor::from_vec(vec![1i64, 2], &[2]).unwrap();
            let dtype = c.all_reduce_sum(&mut ids).unwrap_err();
            let x = Tensor::zeros(&[3], DType::F32, &runtime::Device::Cpu).unwrap();
            let mut y = Tensor::zeros(&[5], DType::F32, &runtime::Device::Cpu).unwrap();
            let shape = c.all_gather(&x, &mut y).unwrap_err();
            // Ranks disagreeing on the size: both get the mismatch.
            let mut t = Tensor::zeros(&[1 + c.rank()], DType::F32, &runtime::Device::Cpu).unwrap();
            let disagree = c.all_reduce_sum(&mut t).unwrap_err();
            (dtype.to_string(), shape.to_string(), disagree.to_string())
        },
    );
    for (dtype, shape, disagree) in out {
        assert!(dtype.contains("unsupported dtype I64"), "{dtype}");
        assert!(
            shape.contains("all_gather") && shape.contains("[5]"),
            "{shape}"
        );
        assert!(disagree.contains("ranks disagree"), "{disagree}");
    }
    assert!(ThreadGroup::new(0).is_err());
}

#[test]
fn dropped_rank_fails_the_others_with_its_number() {
    let start = Instant::now();
    let comms = ThreadGroup::with_timeout(3, Duration::from_millis(500)).unwrap();
    let out = run_ranks(comms, |c| {
        let mut t = Tensor::zeros(&[4], DType::F32, &runtime::Device::Cpu).unwrap();
        c.all_reduce_sum(&mut t).unwrap();
        if c.rank() == 1 {
            return None; // rank 1 leaves; its communicator is dropped when the thread ends
        }
        Some(c.all_reduce_sum(&mut t).unwrap_err())
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(out[1].is_none());
    for e in [&out[0], &out[2]] {
        let e = e.as_ref().unwrap();
        assert!(
            matches!(e, CommError::PeerGone { missing, op: "all_reduce_sum", .. } if missing == &vec![1]),
            "{e}"
        );
        assert!(e.to_string().contains("rank(s) [1]"), "{e}");
    }
}

#[test]
fn panicked_rank_fails_the_others() {
    let comms = ThreadGroup::with_timeout(2, Duration::from_millis(500)).unwrap();
    let errs = std::thread::scope(|s| {
        let hs: Vec<_> = comms
            .into_iter()
            .map(|mut c| {
                s.spawn(move || {
                    if c.rank() == 0 {
                        panic!("rank 0 fails on purpose");
                    }
                    c.barrier()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    assert!(errs[0].is_err());
    let e = errs[1].as_ref().unwrap().as_ref().unwrap_err();
    assert!(
        e.to_string().contains("barrier") && e.to_string().contains("[0]"),
        "{e}"
    );
}

#[test]
fn silent_rank_times_out_naming_it() {
    let start = Instant::now();
    let mut comms = ThreadGroup::with_timeout(2, Duration::from_millis(200)).unwrap();
    let _silent = comms.pop().unwrap(); // alive, but never calls anything
    let mut c0 = comms.pop().unwrap();
    let e = c0.barrier().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        matches!(&e, CommError::Timeout { missing, op: "barrier", .. } if missing == &vec![1]),
        "{e}"
    );
}
