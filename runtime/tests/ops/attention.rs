use crate::common::{reference as r, *};
use runtime::{ops, AttentionParams};

#[derive(Clone)]
struct Case {
    b: usize,
    t: usize,
    s: usize,
    h: usize,
    hkv: usize,
    d: usize,
    q_offset: usize,
    mask: Option<Vec<i64>>,
}

fn run(c: &Case, seed: u64, check_bwd: bool) {
    let mut g = rng(seed);
    let q = randn(&mut g, c.b * c.t * c.h * c.d);
    let k = randn(&mut g, c.b * c.s * c.hkv * c.d);
    let v = randn(&mut g, c.b * c.s * c.hkv * c.d);
    let dy = randn(&mut g, q.len());
    let spec = r::Attn {
        b: c.b,
        t: c.t,
        s: c.s,
        h: c.h,
        hkv: c.hkv,
        d: c.d,
        scale: 1.0 / (c.d as f64).sqrt(),
        lens: vec![c.q_offset + c.t; c.b],
        mask: c.mask.as_deref(),
    };
    let (want, want_lse) = r::attention(&spec, &q, &k, &v);
    let qs = [c.b, c.t, c.h, c.d];
    let ks = [c.b, c.s, c.hkv, c.d];
    let (qt, kt, vt) = (t32(&q, &qs), t32(&k, &ks), t32(&v, &ks));
    let mask_t = c.mask.as_ref().map(|m| ids(m, &[c.b, c.s]));
    let p = AttentionParams {
        scale: spec.scale as f32,
        q_offset: c.q_offset,
    };
    let (mut out, mut lse) = (zeros(&qs), zeros(&[c.b, c.h, c.t]));
    ops::attention_fwd(&mut out, Some(&mut lse), &qt, &kt, &vt, mask_t.as_ref(), &p).unwrap();
    let what = format!(
        "attention b{} t{} s{} h{}/{} d{} off{}",
        c.b, c.t, c.s, c.h, c.hkv, c.d, c.q_offset
    );
    assert_tensor_close(&format!("{what} out"), &out, &want, 1e-5);
    assert_tensor_close(&format!("{what} lse"), &lse, &want_lse, 1e-5);
    if !check_bwd {
        return;
    }
    let loss = |q: &[f64], k: &[f64], v: &[f64]| dot(&r::attention(&spec, q, k, v).0, &dy);
    let dq_fd = fd_grad(&q, |x| loss(x, &k, &v));
    let dk_fd = fd_grad(&k, |x| loss(&q, x, &v));
    let dv_fd = fd_grad(&v, |x| loss(&q, &k, x));
    let (mut dq, mut dk, mut dv) = (
        t32(&vec![9.0; q.len()], &qs),
        t32(&vec![9.0; k.len()], &ks),
        zeros(&ks),
    );
    ops::attention_bwd(
        &mut dq,
        &mut dk,
        &mut dv,
        &t32(&dy, &qs),
        &qt,
        &kt,
        &vt,
        &out,
        &lse,
        mask_t.as_ref(),
        &p,
    )
    .unwrap();
    assert_tensor_close(&format!("{what} dq"), &dq, &dq_fd, 1e-4);
    // bitwise reproducible (the trainer's resume relies on it)
    let (mut dq2, mut dk2, mut dv2) = (zeros(&qs), zeros(&ks), zeros(&ks));
    ops::attention_bwd(
        &mut dq2,
        &mut dk2,
        &mut dv2,
        &t32(&dy, &qs),
        &qt,
        &kt,
        &vt,
        &out,
        &lse,
        mask_t.as_ref(),
        &p,
    )
    .unwrap();
    assert_eq!(
        dq.to_f32_vec().unwrap(),
        dq2.to_f32_vec().unwrap(),
        "{what}: dq not reproducible"
    );
    assert_eq!(
        dk.to_f32_vec().unwrap(),
        dk2.to_f32_vec().unwrap(),
        "{what}: dk not reproducible"
    );
    assert_tensor_close(&format!("{what} dk"), &dk, &dk_fd, 1e-4);
    assert_tensor_close(&format!("{what} dv"), &dv, &dv_fd, 1e-4);
}

#[test]
fn attention_gqa_forward_backward() {
    let base = Case {
        b: 2,
        t: 7,
        s: 7,
        h: 4,
        hkv: 2,
        d: 8,
        q_offset: 0,
        mask: None,
    };
    run(&base, 1, true);
    run(
        &Case {
            b: 1,
            t: 1,
            s: 1,
            h: 1,
            hkv: 1,
            d: 1,
            ..base.clone()
        },
        2,
        true,
    );
    run(
        &Case {
            b: 1,
            t: 33,
            s: 33,
            h: 2,
            hkv: 1,
            d: 7,
            ..base.clone()
        },
        3,
        true,
    );
    run(
        &Case {
            b: 2,
            t: 127,
            s: 127,
            h: 2,
            hkv: 2,
            d: 33,
            ..base.clone()
        },
        4,
        false,
    );
    run(
        &Case {
            b: 2,
            t: 130,
            s: 130,
            h: 3,
            hkv: 1,
            d: 16,
            ..base.clone()
        },
        5,
        false,
    );
}

#[test]
fn attention_query_offset_and_padding_mask() {
    // Chunked prefill: 4 queries at positions 3..7 against 9 stored keys (7 and 8 unused).
    run(
        &Case {
            b: 2,
            t: 4,
            s: 9,
            h: 2,
            hkv: 1,
            d: 4,
            q_offset: 3,
            mask: None,
        },
        6,
        true,
    );
    // Left padding: sequence 0 has two pad tokens; its first two queries see no key at all.
    let mut mask = vec![1i64; 2 * 6];
    mask[0] = 0;
    mask[1] = 0;
    mask[6 + 3] = 0;
    run(
        &Case {
            b: 2,
            t: 6,
            s: 6,
            h: 2,
            hkv: 2,
            d: 5,
            q_offset: 0,
            mask: Some(mask),
        },
        7,
        true,
    );
}

#[test]
fn attention_decode_reads_cache_with_per_sequence_lengths() {
    let (b, s_max, h, hkv, d) = (3, 10, 4, 2, 6);
    for t in [1usize, 2] {
        let lens = vec![5usize, 10, t];
        let mut g = rng(60 + t as u64);
        let q = randn(&mut g, b * t * h * d);
        let k = randn(&mut g, b * s_max * hkv * d);
        let v = randn(&mut g, b * s_max * hkv * d);
        let spec = r::Attn {
            b,
            t,
            s: s_max,
            h,
            hkv,
            d,
            scale: 0.3,
            lens: lens.clone(),
            mask: None,
        };
        let (want, _) = r::attention(&spec, &q, &k, &v);
        let mut out = zeros(&[b, t, h, d]);
        let lt = ids(&lens.iter().map(|&x| x as i64).collect::<Vec<_>>(), &[b]);
        let (kt, vt) = (t32(&k, &[b, s_max, hkv, d]), t32(&v, &[b, s_max, hkv, d]));
        ops::attention_decode(&mut out, &t32(&q, &[b, t, h, d]), &kt, &vt, &lt, 0.3).unwrap();
        assert_tensor_close("attention_decode", &out, &want, 1e-5);
        let bad = ids(&[5, 11, 3], &[b]);
        let e = ops::attention_decode(&mut out, &t32(&q, &[b, t, h, d]), &kt, &vt, &bad, 0.3)
            .unwrap_err();
        assert_err_names(e, &["attention_decode", "kv_lens[1] = 11"]);
    }
}

#[test]
fn attention_shape_errors() {
    let p = AttentionParams::new(4);
    let mut out = zeros(&[1, 2, 3, 4]);
    let e = ops::attention_fwd(
        &mut out,
        None,
        &zeros(&[1, 2, 3, 4]),
        &zeros(&[1, 2, 2, 4]),
        &zeros(&[1, 2, 2, 4]),
        None,
        &p,
    )
    .unwrap_err();
    assert_err_names(
        e,
        &["attention_fwd", "multiple", "[1, 2, 3, 4]", "[1, 2, 2, 4]"],
    );
    let p2 = AttentionParams { q_offset: 1, ..p };
    let e = ops::attention_fwd(
        &mut out,
        None,
        &zeros(&[1, 2, 3, 4]),
        &zeros(&[1, 2, 1, 4]),
        &zeros(&[1, 2, 1, 4]),
        None,
        &p2,
    )
    .unwrap_err();
    assert_err_names(e, &["attention_fwd", "exceeds S"]);
    let mut lse = zeros(&[1, 2, 3]);
    let e = ops::attention_fwd(
        &mut out,
        Some(&mut lse),
        &zeros(&[1, 2, 3, 4]),
        &zeros(&[1, 2, 1, 4]),
        &zeros(&[1, 2, 1, 4]),
        None,
        &p,
    )
    .unwrap_err();
    assert_err_names(e, &["attention_fwd", "lse", "[1, 3, 2]"]);
}
