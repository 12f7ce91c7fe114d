use crate::common::{reference as r, *};
use runtime::{ops, DType, MatmulParams, Tensor};

#[allow(clippy::too_many_arguments)]
fn check(
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    shared_b: bool,
    ta: bool,
    tb: bool,
    bf16_in: bool,
    seed: u64,
) {
    let mut g = rng(seed);
    let mut av = randn(&mut g, batch * m * k);
    let bn = if shared_b { 1 } else { batch };
    let mut bv = randn(&mut g, bn * k * n);
    let cv = randn(&mut g, batch * m * n);
    let a_shape: Vec<usize> = if ta {
        vec![batch, k, m]
    } else {
        vec![batch, m, k]
    };
    let b_inner = if tb { [n, k] } else { [k, n] };
    let b_shape: Vec<usize> = if shared_b {
        b_inner.to_vec()
    } else {
        vec![batch, b_inner[0], b_inner[1]]
    };
    let (a, b) = if bf16_in {
        av = round_bf16(&av);
        bv = round_bf16(&bv);
        (tbf16(&av, &a_shape), tbf16(&bv, &b_shape))
    } else {
        (t32(&av, &a_shape), t32(&bv, &b_shape))
    };
    let (alpha, beta) = (0.5f32, 1.0f32);
    let mut out = t32(&cv, &[batch, m, n]);
    let p = MatmulParams {
        trans_a: ta,
        trans_b: tb,
        alpha,
        beta,
    };
    ops::matmul(&mut out, &a, &b, &p).unwrap();
    let mut want = vec![];
    for i in 0..batch {
        let bs = if shared_b { 0 } else { i * k * n };
        let c = r::matmul(&av[i * m * k..], &bv[bs..], m, n, k, ta, tb);
        for (j, x) in c.iter().enumerate() {
            want.push(alpha as f64 * x + beta as f64 * cv[i * m * n + j]);
        }
    }
    let tol = 1e-5 * (k as f64).sqrt();
    assert_tensor_close(
        &format!("matmul m{m} n{n} k{k} b{batch} ta{ta} tb{tb}"),
        &out,
        &want,
        tol,
    );
}

#[test]
fn matmul_matches_reference_on_odd_sizes_and_all_transposes() {
    let mut seed = 0;
    for &m in &SIZES {
        for &(n, k) in &[(7usize, 33usize), (33, 1), (1, 127), (127, 7)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                seed += 1;
                check(m, n, k, 1, true, ta, tb, false, seed);
            }
        }
    }
}

#[test]
fn matmul_batched_shared_and_bf16_paths() {
    for (i, &(ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .iter()
        .enumerate()
    {
        check(7, 33, 17, 3, false, ta, tb, false, 100 + i as u64);
        check(33, 9, 7, 2, true, ta, tb, false, 200 + i as u64);
        check(7, 5, 33, 2, false, ta, tb, true, 300 + i as u64);
        check(130, 129, 131, 2, true, ta, tb, false, 400 + i as u64);
    }
}

#[test]
fn matmul_beta_zero_ignores_nan_and_bf16_output_rounds() {
    let a = t32(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let mut out = t32(&[f64::NAN; 4], &[2, 2]);
    ops::matmul(&mut out, &a, &a, &MatmulParams::default()).unwrap();
    assert_eq!(out.to_f32_vec().unwrap(), vec![7.0, 10.0, 15.0, 22.0]);
    let mut ob = Tensor::zeros(&[2, 2], DType::BF16, a.device()).unwrap();
    ops::matmul(
        &mut ob,
        &a,
        &a,
        &MatmulParams {
            trans_b: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ob.to_f32_vec().unwrap(), vec![5.0, 11.0, 11.0, 25.0]);
    let c = ops::matmul_new(&a, &a, true, false).unwrap();
    assert_eq!(c.to_f32_vec().unwrap(), vec![10.0, 14.0, 14.0, 20.0]);
}

#[test]
fn matmul_shape_errors_name_op_and_shapes() {
    let a = zeros(&[2, 3]);
    let b = zeros(&[4, 5]);
    let mut out = zeros(&[2, 5]);
    let e = ops::matmul(&mut out, &a, &b, &MatmulParams::default()).unwrap_err();
    assert_err_names(e, &["matmul", "[2, 3]", "[4, 5]", "inner"]);
    let b = zeros(&[3, 5]);
    let mut bad_out = zeros(&[5, 2]);
    let e = ops::matmul(&mut bad_out, &a, &b, &MatmulParams::default()).unwrap_err();
    assert_err_names(e, &["matmul", "[5, 2]"]);
    let ai = ids(&[1, 2, 3, 4, 5, 6], &[2, 3]);
    let e = ops::matmul(&mut out, &ai, &b, &MatmulParams::default()).unwrap_err();
    assert_err_names(e, &["matmul", "I64"]);
    let a3 = zeros(&[2, 2, 3]);
    let b3 = zeros(&[3, 3, 5]);
    let mut o3 = zeros(&[2, 2, 5]);
    let e = ops::matmul(&mut o3, &a3, &b3, &MatmulParams::default()).unwrap_err();
    assert_err_names(e, &["matmul", "batch"]);
}
