use crate::common::{reference as r, *};
use runtime::{ops, rope_inv_freq, rope_tables, Device, RopeScaling};

#[test]
fn rmsnorm_forward_and_backward() {
    // (rows, C): odd widths, and enough rows to split dW over several tasks
    for (i, &(n, c)) in [(5, 1), (5, 7), (5, 33), (5, 127), (130, 7)]
        .iter()
        .enumerate()
    {
        let mut g = rng(20 + i as u64);
        let (x, w, dy) = (randn(&mut g, n * c), randn(&mut g, c), randn(&mut g, n * c));
        let eps = 1e-5;
        let (want, want_r) = r::rmsnorm(&x, &w, eps);
        let (mut out, mut rstd) = (zeros(&[n, c]), zeros(&[n]));
        ops::rmsnorm_fwd(
            &mut out,
            &mut rstd,
            &t32(&x, &[n, c]),
            &t32(&w, &[c]),
            eps as f32,
        )
        .unwrap();
        assert_tensor_close("rmsnorm out", &out, &want, 1e-5);
        assert_tensor_close("rmsnorm rstd", &rstd, &want_r, 1e-5);

        let loss = |x: &[f64], w: &[f64]| dot(&r::rmsnorm(x, w, eps).0, &dy);
        let dx_fd = fd_grad(&x, |x| loss(x, &w));
        let dw_fd = fd_grad(&w, |w| loss(&x, w));
        let mut dx = t32(&vec![1.0; n * c], &[n, c]);
        let dw0 = randn(&mut g, c);
        let mut dw = t32(&dw0, &[c]);
        let args = (&t32(&dy, &[n, c]), &t32(&x, &[n, c]), &t32(&w, &[c]), &rstd);
        ops::rmsnorm_bwd(&mut dx, &mut dw, args.0, args.1, args.2, args.3, false).unwrap();
        assert_tensor_close("rmsnorm dx", &dx, &dx_fd, 1e-4);
        let dw_want: Vec<f64> = dw0.iter().zip(&dw_fd).map(|(a, b)| a + b).collect();
        assert_tensor_close("rmsnorm dw (accumulated)", &dw, &dw_want, 1e-4);
        ops::rmsnorm_bwd(&mut dx, &mut dw, args.0, args.1, args.2, args.3, true).unwrap();
        let dx2: Vec<f64> = dx_fd.iter().map(|v| 2.0 * v).collect();
        assert_tensor_close("rmsnorm dx (accumulated)", &dx, &dx2, 1e-4);
    }
    let mut out = zeros(&[2, 4]);
    let mut rstd = zeros(&[3]);
    let e = ops::rmsnorm_fwd(&mut out, &mut rstd, &zeros(&[2, 4]), &zeros(&[4]), 1e-5).unwrap_err();
    assert_err_names(e, &["rmsnorm_fwd", "rstd", "[3]"]);
    let mut rstd = zeros(&[2]);
    let e = ops::rmsnorm_fwd(&mut out, &mut rstd, &zeros(&[2, 4]), &zeros(&[5]), 1e-5).unwrap_err();
    assert_err_names(e, &["rmsnorm_fwd", "[5]", "[4]"]);
}

/// transformers' `_compute_llama3_parameters`, evaluated in f64 from the f32 default frequencies.
fn llama3_ref(d: usize, theta: f64, factor: f64, lo: f64, hi: f64, old: f64) -> Vec<f64> {
    (0..d / 2)
        .map(|i| {
            let f = 1.0 / (theta.powf((2 * i) as f64 / d as f64));
            let wl = 2.0 * std::f64::consts::PI / f;
            if wl < old / hi {
                f
            } else if wl > old / lo {
                f / factor
            } else {
                let s = (old / wl - lo) / (hi - lo);
                (1.0 - s) * f / factor + s * f
            }
        })
        .collect()
}

#[test]
fn rope_tables_default_and_llama3() {
    let d = 128;
    let def = rope_inv_freq(d, 500000.0, &RopeScaling::Default).unwrap();
    let want: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / 500000f64.powf((2 * i) as f64 / d as f64))
        .collect();
    assert_close(
        "default inv_freq",
        &def.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &want,
        1e-5,
    );
    let sc = RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    };
    let l3 = rope_inv_freq(d, 500000.0, &sc).unwrap();
    let want = llama3_ref(d, 500000.0, 8.0, 1.0, 4.0, 8192.0);
    assert_close(
        "llama3 inv_freq",
        &l3.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &want,
        1e-5,
    );
    // all three regimes are exercised: unchanged, divided by factor, smoothed
    assert!(l3[0] == def[0] && (l3[63] - def[63] / 8.0).abs() < 1e-12);
    assert!((0..64).any(|i| l3[i] != def[i] && (l3[i] - def[i] / 8.0).abs() > 1e-9 * def[i]));
    let (cos, sin) = rope_tables(d, 500000.0, &sc, 50, &Device::Cpu).unwrap();
    assert_eq!(cos.shape(), &[50, 64]);
    let (c, s) = (cos.to_f32_vec().unwrap(), sin.to_f32_vec().unwrap());
    for p in [0usize, 1, 49] {
        for i in [0usize, 20, 63] {
            let a = (p as f32 * l3[i]) as f64;
            assert!(
                (c[p * 64 + i] as f64 - a.cos()).abs() < 1e-6
                    && (s[p * 64 + i] as f64 - a.sin()).abs() < 1e-6
            );
        }
    }
    assert!(rope_inv_freq(7, 1e4, &RopeScaling::Default).is_err());
}

#[test]
fn rope_forward_backward_with_position_ids() {
    for (i, &h) in [1usize, 3].iter().enumerate() {
        for &d in &[2usize, 8, 34] {
            let n = 7;
            let mut g = rng(30 + i as u64 * 10 + d as u64);
            let x = randn(&mut g, n * h * d);
            let pos: Vec<i64> = (0..n).map(|_| g.below(40) as i64).collect();
            let (cos, sin) =
                rope_tables(d, 10000.0, &RopeScaling::Default, 40, &Device::Cpu).unwrap();
            let inv: Vec<f64> = rope_inv_freq(d, 10000.0, &RopeScaling::Default)
                .unwrap()
                .iter()
                .map(|&f| f as f64)
                .collect();
            let pt = ids(&pos, &[1, n]);
            let mut xt = t32(&x, &[1, n, h, d]);
            ops::rope_fwd(&mut xt, &cos, &sin, &pt).unwrap();
            let want = r::rope(&x, &pos, h, d, &inv);
            assert_tensor_close("rope fwd", &xt, &want, 2e-5);
            // backward: gradient of <rope(x), dy> w.r.t. x
            let dy = randn(&mut g, n * h * d);
            let fd = fd_grad(&x, |x| dot(&r::rope(x, &pos, h, d, &inv), &dy));
            let mut dt = t32(&dy, &[n, h, d]);
            ops::rope_bwd(&mut dt, &cos, &sin, &pt).unwrap();
            assert_tensor_close("rope bwd", &dt, &fd, 2e-5);
        }
    }
    let (cos, sin) = rope_tables(4, 10000.0, &RopeScaling::Default, 4, &Device::Cpu).unwrap();
    let mut x = zeros(&[2, 1, 4]);
    assert_err_names(
        ops::rope_fwd(&mut x, &cos, &sin, &ids(&[0, 9], &[2])).unwrap_err(),
        &["rope", "9"],
    );
    assert_err_names(
        ops::rope_fwd(&mut x, &cos, &sin, &ids(&[0], &[1])).unwrap_err(),
        &["rope_fwd", "pos", "[1]"],
    );
}

#[test]
fn swiglu_forward_backward() {
    for (i, &n) in SIZES.iter().enumerate() {
        let mut g = rng(40 + i as u64);
        let (gt, up, dy) = (randn(&mut g, n), randn(&mut g, n), randn(&mut g, n));
        let mut out = zeros(&[n]);
        ops::swiglu_fwd(&mut out, &t32(&gt, &[n]), &t32(&up, &[n])).unwrap();
        let f = |gt: &[f64], up: &[f64]| -> Vec<f64> {
            gt.iter().zip(up).map(|(a, b)| r::silu(*a) * b).collect()
        };
        assert_tensor_close("swiglu", &out, &f(&gt, &up), 1e-6);
        let (mut dg, mut du) = (zeros(&[n]), zeros(&[n]));
        ops::swiglu_bwd(
            &mut dg,
            &mut du,
            &t32(&dy, &[n]),
            &t32(&gt, &[n]),
            &t32(&up, &[n]),
        )
        .unwrap();
        assert_tensor_close(
            "swiglu dgate",
            &dg,
            &fd_grad(&gt, |x| dot(&f(x, &up), &dy)),
            1e-5,
        );
        assert_tensor_close(
            "swiglu dup",
            &du,
            &fd_grad(&up, |x| dot(&f(&gt, x), &dy)),
            1e-5,
        );
    }
    let mut out = zeros(&[3]);
    assert_err_names(
        ops::swiglu_fwd(&mut out, &zeros(&[3]), &zeros(&[2])).unwrap_err(),
        &["swiglu_fwd", "[2]"],
    );
}

#[test]
fn embedding_forward_and_scatter_add_backward() {
    let (v, c) = (11, 7);
    let mut g = rng(50);
    let table = randn(&mut g, v * c);
    let idv: Vec<i64> = vec![3, 0, 3, 10, 3, 5];
    let mut out = zeros(&[2, 3, c]);
    ops::embedding_fwd(&mut out, &ids(&idv, &[2, 3]), &t32(&table, &[v, c])).unwrap();
    let want: Vec<f64> = idv
        .iter()
        .flat_map(|&i| table[i as usize * c..][..c].to_vec())
        .collect();
    assert_tensor_close("embedding fwd", &out, &want, 0.0);
    let dy = randn(&mut g, 6 * c);
    let base = randn(&mut g, v * c);
    let mut dt = t32(&base, &[v, c]);
    let idt = ids(&idv, &[2, 3]).cast(runtime::DType::I32).unwrap();
    ops::embedding_bwd(&mut dt, &t32(&dy, &[2, 3, c]), &idt).unwrap();
    let lookup = |t: &[f64]| -> f64 {
        let e: Vec<f64> = idv
            .iter()
            .flat_map(|&i| t[i as usize * c..][..c].to_vec())
            .collect();
        dot(&e, &dy)
    };
    let fd = fd_grad(&table, lookup);
    let want: Vec<f64> = base.iter().zip(&fd).map(|(a, b)| a + b).collect();
    assert_tensor_close("embedding bwd", &dt, &want, 1e-5);
    let e = ops::embedding_fwd(
        &mut out,
        &ids(&[0, 1, 2, 3, 4, 11], &[2, 3]),
        &t32(&table, &[v, c]),
    )
    .unwrap_err();
    assert_err_names(e, &["embedding_fwd", "11"]);
    let e = ops::embedding_fwd(&mut out, &ids(&[0, 1], &[2]), &t32(&table, &[v, c])).unwrap_err();
    assert_err_names(e, &["embedding_fwd", "[2, 3, 7]", "[2, 7]"]);
}
