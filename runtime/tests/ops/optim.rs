use crate::common::*;
use runtime::{ops, AdamWParams, DType, Device, Tensor};

#[test]
fn adamw_matches_reference_over_steps() {
    let n = 33;
    let mut g = rng(100);
    let mut p = randn(&mut g, n);
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let (mut pt, mut mt, mut vt) = (t32(&p, &[n]), zeros(&[n]), zeros(&[n]));
    let mut copy = Tensor::zeros(&[n], DType::BF16, &Device::Cpu).unwrap();
    for step in 1..=3u64 {
        let gr = randn(&mut g, n);
        let hp = AdamWParams {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            step,
            grad_scale: 0.5,
        };
        ops::adamw_step(
            &mut pt,
            &t32(&gr, &[n]),
            &mut mt,
            &mut vt,
            Some(&mut copy),
            &hp,
        )
        .unwrap();
        let (b1, b2, lr, wd) = (0.9f64, 0.95f64, 0.01f64, 0.1f64);
        for i in 0..n {
            let gi = 0.5 * gr[i];
            p[i] *= 1.0 - lr * wd;
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let mh = m[i] / (1.0 - b1.powi(step as i32));
            let vh = v[i] / (1.0 - b2.powi(step as i32));
            p[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
        assert_tensor_close("adamw param", &pt, &p, 1e-5);
        assert_tensor_close("adamw m", &mt, &m, 1e-5);
        assert_tensor_close("adamw v", &vt, &v, 1e-5);
        assert_close(
            "adamw bf16 copy",
            &f64s(&copy),
            &round_bf16(&f64s(&pt)),
            0.0,
        );
    }
    let e = ops::adamw_step(
        &mut pt,
        &zeros(&[n + 1]),
        &mut mt,
        &mut vt,
        None,
        &AdamWParams::default(),
    )
    .unwrap_err();
    assert_err_names(e, &["adamw_step", "grad", "[34]"]);
    let mut pb = pt.cast(DType::BF16).unwrap();
    let e = ops::adamw_step(
        &mut pb,
        &zeros(&[n]),
        &mut mt,
        &mut vt,
        None,
        &AdamWParams::default(),
    )
    .unwrap_err();
    assert_err_names(e, &["adamw_step", "param", "BF16"]);
}

#[test]
fn rng_is_deterministic_resumable_and_well_distributed() {
    let mut a = rng(42);
    let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
    let saved = a.state();
    let next: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
    let mut b = runtime::Rng::from_state(saved).unwrap();
    assert_eq!(next, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
    let mut c = rng(42);
    assert_eq!(first, (0..5).map(|_| c.next_u64()).collect::<Vec<_>>());
    assert_ne!(
        first,
        (0..5).map(|_| rng(43).next_u64()).collect::<Vec<_>>()
    );
    assert!(runtime::Rng::from_state([0; 4]).is_err());

    let mut t = zeros(&[20000]);
    runtime::fill_normal(&mut t, 1.0, 2.0, &mut a).unwrap();
    let x = f64s(&t);
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
    assert!(
        (mean - 1.0).abs() < 0.05 && (var.sqrt() - 2.0).abs() < 0.05,
        "normal: {mean} {var}"
    );
    runtime::fill_uniform(&mut t, -1.0, 3.0, &mut a).unwrap();
    let x = f64s(&t);
    assert!(x.iter().all(|&v| (-1.0..3.0).contains(&v)));
    assert!((x.iter().sum::<f64>() / x.len() as f64 - 1.0).abs() < 0.05);
    let mut counts = [0usize; 7];
    for _ in 0..7000 {
        counts[a.below(7) as usize] += 1;
    }
    assert!(
        counts.iter().all(|&k| (850..1150).contains(&k)),
        "{counts:?}"
    );
}
