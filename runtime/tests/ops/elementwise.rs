use crate::common::*;
use runtime::{ops, DType, Device, Tensor};

#[test]
fn binary_ops_scale_axpy_match_reference() {
    for (i, &n) in SIZES.iter().chain(&[40_000usize]).enumerate() {
        let mut g = rng(10 + i as u64);
        let (a, b) = (randn(&mut g, n), randn(&mut g, n));
        let (ta, tb) = (t32(&a, &[n]), t32(&b, &[n]));
        let mut out = zeros(&[n]);
        ops::add(&mut out, &ta, &tb).unwrap();
        let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_tensor_close("add", &out, &want, 1e-6);
        ops::mul(&mut out, &ta, &tb).unwrap();
        let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
        assert_tensor_close("mul", &out, &want, 1e-6);
        ops::scale(&mut out, &ta, -0.75).unwrap();
        let want: Vec<f64> = a.iter().map(|x| -0.75 * x).collect();
        assert_tensor_close("scale", &out, &want, 1e-6);
        let mut y = t32(&b, &[n]);
        ops::axpy(&mut y, 0.5, &ta).unwrap();
        let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| y + 0.5 * x).collect();
        assert_tensor_close("axpy", &y, &want, 1e-6);
        ops::scale_inplace(&mut y, 2.0).unwrap();
        let want: Vec<f64> = want.iter().map(|x| 2.0 * x).collect();
        assert_tensor_close("scale_inplace", &y, &want, 1e-6);
        let s = ops::sum(&ta).unwrap();
        // f32 partial sums: relative error ~1e-7 of the sum of magnitudes
        let mag: f64 = a.iter().map(|x| x.abs()).sum();
        assert!((s - a.iter().sum::<f64>()).abs() <= 1e-6 * mag, "sum");
        let mean_err = ops::mean(&ta).unwrap() - a.iter().sum::<f64>() / n as f64;
        assert!(mean_err.abs() <= 1e-6 * mag / n as f64, "mean");
        let nrm = ops::global_l2_norm(&[&ta, &tb]).unwrap();
        let want = (dot(&a, &a) + dot(&b, &b)).sqrt();
        assert_close("global_l2_norm", &[nrm], &[want], 1e-6);
    }
}

#[test]
fn bf16_tensors_compute_in_f32_and_round_once() {
    let mut g = rng(3);
    let (a, b) = (
        round_bf16(&randn(&mut g, 33)),
        round_bf16(&randn(&mut g, 33)),
    );
    let mut out = Tensor::zeros(&[33], DType::BF16, &Device::Cpu).unwrap();
    ops::add(&mut out, &tbf16(&a, &[33]), &t32(&b, &[33])).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_close("bf16 add", &f64s(&out), &round_bf16(&want), 1e-7);
}

#[test]
fn elementwise_errors_name_op_and_shapes() {
    let mut out = zeros(&[3]);
    assert_err_names(
        ops::add(&mut out, &zeros(&[3]), &zeros(&[4])).unwrap_err(),
        &["add", "[3]", "[4]"],
    );
    assert_err_names(
        ops::axpy(&mut out, 1.0, &zeros(&[2, 2])).unwrap_err(),
        &["axpy", "[2, 2]"],
    );
    assert_err_names(ops::sum(&ids(&[1], &[1])).unwrap_err(), &["sum", "I64"]);
    assert_err_names(ops::mean(&zeros(&[0])).unwrap_err(), &["mean", "empty"]);
}

#[test]
fn reductions_are_bitwise_deterministic() {
    let mut g = rng(11);
    let x = t32(&randn(&mut g, 300_000), &[300_000]);
    let first = (ops::sum(&x).unwrap(), ops::sum_squares(&x).unwrap());
    for _ in 0..5 {
        let again = (ops::sum(&x).unwrap(), ops::sum_squares(&x).unwrap());
        assert_eq!(first.0.to_bits(), again.0.to_bits());
        assert_eq!(first.1.to_bits(), again.1.to_bits());
    }
}
