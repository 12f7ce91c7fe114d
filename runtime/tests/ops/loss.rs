use crate::common::{reference as r, *};
use runtime::ops;

fn targets(g: &mut runtime::Rng, n: usize, v: usize, ignore_every: usize) -> Vec<i64> {
    (0..n)
        .map(|i| {
            if ignore_every > 0 && i % ignore_every == 1 {
                -100
            } else {
                g.below(v as u64) as i64
            }
        })
        .collect()
}

#[test]
fn cross_entropy_forward_backward_with_ignore_index() {
    for (i, &v) in SIZES.iter().enumerate() {
        let n = 6;
        let mut g = rng(70 + i as u64);
        let x: Vec<f64> = randn(&mut g, n * v).iter().map(|a| 3.0 * a).collect();
        let tg = targets(&mut g, n, v, 3);
        let mean_loss = |x: &[f64]| {
            let ls = r::log_softmax(x, v, 1.0);
            let kept: Vec<f64> = (0..n)
                .filter(|&j| tg[j] != -100)
                .map(|j| -ls[j * v + tg[j] as usize])
                .collect();
            kept.iter().sum::<f64>() / kept.len() as f64
        };
        let ls = r::log_softmax(&x, v, 1.0);
        let per: Vec<f64> = (0..n)
            .map(|j| {
                if tg[j] == -100 {
                    0.0
                } else {
                    -ls[j * v + tg[j] as usize]
                }
            })
            .collect();
        let (mut losses, mut lse) = (zeros(&[2, 3]), zeros(&[2, 3]));
        let (xt, tt) = (t32(&x, &[2, 3, v]), ids(&tg, &[2, 3]));
        let st = ops::cross_entropy_fwd(&mut losses, &mut lse, &xt, &tt, -100).unwrap();
        assert_tensor_close("ce losses", &losses, &per, 1e-5);
        assert_eq!(st.count, 4);
        assert_close("ce mean", &[st.mean], &[mean_loss(&x)], 1e-5);
        let mut dx = zeros(&[2, 3, v]);
        ops::cross_entropy_bwd(&mut dx, &xt, &lse, &tt, -100, 1.0 / st.count as f32, None).unwrap();
        assert_tensor_close("ce dlogits", &dx, &fd_grad(&x, mean_loss), 1e-5);
        // per-token upstream weights
        let w = randn(&mut g, n);
        ops::cross_entropy_bwd(&mut dx, &xt, &lse, &tt, -100, 0.5, Some(&t32(&w, &[n]))).unwrap();
        let weighted = |x: &[f64]| {
            let ls = r::log_softmax(x, v, 1.0);
            (0..n)
                .filter(|&j| tg[j] != -100)
                .map(|j| -0.5 * w[j] * ls[j * v + tg[j] as usize])
                .sum::<f64>()
        };
        assert_tensor_close("ce weighted dlogits", &dx, &fd_grad(&x, weighted), 1e-5);
    }
}

#[test]
fn token_logprobs_with_temperature_forward_backward() {
    for (i, &v) in SIZES.iter().enumerate() {
        let n = 5;
        let temp = 0.7;
        let mut g = rng(80 + i as u64);
        let x = randn(&mut g, n * v);
        let tg = targets(&mut g, n, v, 0);
        let dlp = randn(&mut g, n);
        let f = |x: &[f64]| -> Vec<f64> {
            let ls = r::log_softmax(x, v, temp);
            (0..n).map(|j| ls[j * v + tg[j] as usize]).collect()
        };
        let (mut lp, mut lse) = (zeros(&[n]), zeros(&[n]));
        let (xt, tt) = (t32(&x, &[n, v]), ids(&tg, &[n]));
        ops::token_logprobs_fwd(&mut lp, &mut lse, &xt, &tt, temp as f32, None).unwrap();
        assert_tensor_close("logprobs", &lp, &f(&x), 1e-5);
        let mut dx = zeros(&[n, v]);
        ops::token_logprobs_bwd(&mut dx, &t32(&dlp, &[n]), &xt, &lse, &tt, temp as f32, None)
            .unwrap();
        assert_tensor_close(
            "logprobs dlogits",
            &dx,
            &fd_grad(&x, |x| dot(&f(x), &dlp)),
            1e-5,
        );
    }
    // bf16 logits, ignored rows get zero log-prob and zero gradient
    let x = round_bf16(&[1.0, 2.0, 0.5, -1.0, 0.0, 3.0]);
    let (mut lp, mut lse) = (zeros(&[2]), zeros(&[2]));
    let tt = ids(&[2, -1], &[2]);
    ops::token_logprobs_fwd(&mut lp, &mut lse, &tbf16(&x, &[2, 3]), &tt, 1.0, Some(-1)).unwrap();
    let ls = r::log_softmax(&x, 3, 1.0);
    assert_tensor_close("logprobs bf16", &lp, &[ls[2], 0.0], 1e-6);
    let mut dx = zeros(&[2, 3]);
    ops::token_logprobs_bwd(
        &mut dx,
        &t32(&[1.0, 1.0], &[2]),
        &tbf16(&x, &[2, 3]),
        &lse,
        &tt,
        1.0,
        Some(-1),
    )
    .unwrap();
    assert_eq!(&dx.to_f32_vec().unwrap()[3..], &[0.0, 0.0, 0.0]);
}

#[test]
fn softmax_matches_reference() {
    for &v in &SIZES {
        let mut g = rng(90 + v as u64);
        let x = randn(&mut g, 3 * v);
        let mut out = zeros(&[3, v]);
        ops::softmax(&mut out, &t32(&x, &[3, v]), 2.0).unwrap();
        let want: Vec<f64> = r::log_softmax(&x, v, 2.0).iter().map(|l| l.exp()).collect();
        assert_tensor_close("softmax", &out, &want, 1e-6);
    }
}

#[test]
fn loss_errors_name_op_and_shapes() {
    let (mut l, mut s) = (zeros(&[2]), zeros(&[2]));
    let e = ops::cross_entropy_fwd(&mut l, &mut s, &zeros(&[3, 5]), &ids(&[0, 1], &[2]), -100)
        .unwrap_err();
    assert_err_names(e, &["cross_entropy_fwd", "[3, 5]", "[2]"]);
    let e = ops::cross_entropy_fwd(&mut l, &mut s, &zeros(&[2, 5]), &ids(&[0, 5], &[2]), -100)
        .unwrap_err();
    assert_err_names(e, &["5", "vocabulary"]);
    let e = ops::token_logprobs_fwd(
        &mut l,
        &mut s,
        &zeros(&[2, 5]),
        &ids(&[0, 1], &[2]),
        0.0,
        None,
    )
    .unwrap_err();
    assert_err_names(e, &["token_logprobs_fwd", "temperature"]);
    let e =
        ops::cross_entropy_fwd(&mut l, &mut s, &zeros(&[2, 5]), &zeros(&[2]), -100).unwrap_err();
    assert_err_names(e, &["cross_entropy_fwd", "targets", "F32"]);
}
