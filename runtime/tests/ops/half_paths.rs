//! BF16/F16 tensors on the CPU ops that convert piecewise (rows/chunks) instead of whole
//! tensors: results must be bit-identical to the f32 path applied to the same (exactly
//! upcast) inputs, with a half output rounded once at the end.

use runtime::{ops, DType, Device, Tensor};

use crate::common::{ids, randn, rng, t32};

const HALF: [DType; 2] = [DType::BF16, DType::F16];

fn half(v: &[f64], shape: &[usize], dt: DType) -> Tensor {
    t32(v, shape).cast(dt).unwrap()
}

fn up(t: &Tensor) -> Tensor {
    t.cast(DType::F32).unwrap()
}

fn out(shape: &[usize], dt: DType) -> Tensor {
    Tensor::zeros(shape, dt, &Device::Cpu).unwrap()
}

/// f32 bit patterns (exact for half dtypes, so equal bits mean equal half values).
fn bits(t: &Tensor) -> Vec<u32> {
    t.to_f32_vec()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// `got` (dtype `dt`) equals the f32 reference `want32` rounded once to `dt`.
fn assert_rounded_once(what: &str, got: &Tensor, want32: &Tensor) {
    let want = want32.cast(got.dtype()).unwrap();
    assert_eq!(bits(got), bits(&want), "{what} ({:?})", got.dtype());
}

#[test]
fn swiglu_half_matches_f32_path() {
    // Over two rayon chunks (16384) and not a multiple of one.
    let n = 40_003;
    let mut g = rng(71);
    for dt in HALF {
        let gate = half(&randn(&mut g, n), &[n], dt);
        let upv = half(&randn(&mut g, n), &[n], dt);
        let dy = half(&randn(&mut g, n), &[n], dt);
        let mut want = out(&[n], DType::F32);
        ops::swiglu_fwd(&mut want, &up(&gate), &up(&upv)).unwrap();
        for odt in [dt, DType::F32] {
            let mut o = out(&[n], odt);
            ops::swiglu_fwd(&mut o, &gate, &upv).unwrap();
            assert_rounded_once("swiglu_fwd", &o, &want);
        }
        let (mut wg, mut wu) = (out(&[n], DType::F32), out(&[n], DType::F32));
        ops::swiglu_bwd(&mut wg, &mut wu, &up(&dy), &up(&gate), &up(&upv)).unwrap();
        let (mut dg, mut du) = (out(&[n], dt), out(&[n], dt));
        ops::swiglu_bwd(&mut dg, &mut du, &dy, &gate, &upv).unwrap();
        assert_rounded_once("swiglu_bwd dgate", &dg, &wg);
        assert_rounded_once("swiglu_bwd dup", &du, &wu);
    }
}

#[test]
fn embedding_fwd_half_matches_f32_path() {
    let (v, c) = (50, 24);
    let mut g = rng(72);
    let id = ids(&[3, 49, 0, 3, 17, 17, 8, 1, 49, 22, 5, 0, 31], &[13]);
    for dt in HALF {
        let table = half(&randn(&mut g, v * c), &[v, c], dt);
        let mut want = out(&[13, c], DType::F32);
        ops::embedding_fwd(&mut want, &id, &up(&table)).unwrap();
        for odt in [dt, DType::F32] {
            let mut o = out(&[13, c], odt);
            ops::embedding_fwd(&mut o, &id, &table).unwrap();
            assert_rounded_once("embedding_fwd", &o, &want);
        }
    }
}

#[test]
fn rmsnorm_half_matches_f32_path() {
    // 37 rows: several backward blocks of 16 rows, the last one short.
    let (n, c) = (37, 96);
    let mut g = rng(73);
    for dt in HALF {
        let x = half(&randn(&mut g, n * c), &[n, c], dt);
        let w = half(&randn(&mut g, c), &[c], dt);
        let dy = half(&randn(&mut g, n * c), &[n, c], dt);
        let (mut want, mut rs32) = (out(&[n, c], DType::F32), out(&[n], DType::F32));
        ops::rmsnorm_fwd(&mut want, &mut rs32, &up(&x), &up(&w), 1e-5).unwrap();
        for odt in [dt, DType::F32] {
            let (mut o, mut rs) = (out(&[n, c], odt), out(&[n], DType::F32));
            ops::rmsnorm_fwd(&mut o, &mut rs, &x, &w, 1e-5).unwrap();
            assert_rounded_once("rmsnorm_fwd", &o, &want);
            assert_eq!(bits(&rs), bits(&rs32), "rmsnorm_fwd rstd");
        }
        for acc in [false, true] {
            let base = half(&randn(&mut g, n * c), &[n, c], dt);
            let (mut wdx, mut wdw) = (up(&base), out(&[c], DType::F32));
            ops::rmsnorm_bwd(&mut wdx, &mut wdw, &up(&dy), &up(&x), &up(&w), &rs32, acc).unwrap();
            let (mut dx, mut dw) = (base.copy().unwrap(), out(&[c], DType::F32));
            ops::rmsnorm_bwd(&mut dx, &mut dw, &dy, &x, &w, &rs32, acc).unwrap();
            assert_rounded_once("rmsnorm_bwd dx", &dx, &wdx);
            assert_eq!(bits(&dw), bits(&wdw), "rmsnorm_bwd dw ({dt:?}, acc {acc})");
        }
    }
}

#[test]
fn logprobs_and_softmax_half_match_f32_path() {
    let (n, v) = (9, 300);
    let mut g = rng(74);
    let tg = ids(&[4, 299, -1, 0, 150, 7, -1, 298, 33], &[n]);
    for dt in HALF {
        let x = half(&randn(&mut g, n * v), &[n, v], dt);
        let dlp = t32(&randn(&mut g, n), &[n]);
        let (mut lp32, mut lse32) = (out(&[n], DType::F32), out(&[n], DType::F32));
        ops::token_logprobs_fwd(&mut lp32, &mut lse32, &up(&x), &tg, 0.7, Some(-1)).unwrap();
        let (mut lp, mut lse) = (out(&[n], DType::F32), out(&[n], DType::F32));
        ops::token_logprobs_fwd(&mut lp, &mut lse, &x, &tg, 0.7, Some(-1)).unwrap();
        assert_eq!(bits(&lp), bits(&lp32), "logprobs_fwd logp ({dt:?})");
        assert_eq!(bits(&lse), bits(&lse32), "logprobs_fwd lse ({dt:?})");
        let mut want = out(&[n, v], DType::F32);
        ops::token_logprobs_bwd(&mut want, &dlp, &up(&x), &lse32, &tg, 0.7, Some(-1)).unwrap();
        for odt in [dt, DType::F32] {
            let mut d = Tensor::full(&[n, v], 5.0, odt, &Device::Cpu).unwrap();
            ops::token_logprobs_bwd(&mut d, &dlp, &x, &lse32, &tg, 0.7, Some(-1)).unwrap();
            assert_rounded_once("logprobs_bwd", &d, &want);
        }
        let mut want = out(&[n, v], DType::F32);
        ops::softmax(&mut want, &up(&x), 1.3).unwrap();
        for odt in [dt, DType::F32] {
            let mut o = out(&[n, v], odt);
            ops::softmax(&mut o, &x, 1.3).unwrap();
            assert_rounded_once("softmax", &o, &want);
        }
    }
}

#[test]
fn elementwise_and_reductions_half_match_f32_path() {
    let n = 40_003;
    let mut g = rng(75);
    for dt in HALF {
        let a = half(&randn(&mut g, n), &[n], dt);
        let b = half(&randn(&mut g, n), &[n], dt);
        let b32 = up(&b);
        for odt in [dt, DType::F32] {
            // mixed input dtypes: one half, one f32
            let (mut want, mut o) = (out(&[n], DType::F32), out(&[n], odt));
            ops::add(&mut want, &up(&a), &b32).unwrap();
            ops::add(&mut o, &a, &b32).unwrap();
            assert_rounded_once("add", &o, &want);
            ops::mul(&mut want, &up(&a), &b32).unwrap();
            ops::mul(&mut o, &a, &b).unwrap();
            assert_rounded_once("mul", &o, &want);
            ops::scale(&mut want, &up(&a), 0.37).unwrap();
            ops::scale(&mut o, &a, 0.37).unwrap();
            assert_rounded_once("scale", &o, &want);
        }
        let (mut y32, mut y) = (up(&a), a.copy().unwrap());
        ops::axpy(&mut y32, -1.7, &b32).unwrap();
        ops::axpy(&mut y, -1.7, &b).unwrap();
        assert_rounded_once("axpy", &y, &y32);
        let (mut y32, mut y) = (up(&a), a.copy().unwrap());
        ops::scale_inplace(&mut y32, 3.1).unwrap();
        ops::scale_inplace(&mut y, 3.1).unwrap();
        assert_rounded_once("scale_inplace", &y, &y32);
        let a32 = up(&a);
        assert_eq!(ops::sum(&a).unwrap(), ops::sum(&a32).unwrap(), "sum {dt:?}");
        assert_eq!(
            ops::sum_squares(&a).unwrap(),
            ops::sum_squares(&a32).unwrap(),
            "sum_squares {dt:?}"
        );
    }
}

#[test]
fn rope_and_embedding_bwd_half_match_f32_path() {
    use runtime::rope::{rope_tables, RopeScaling};
    let (n, h, d) = (11, 3, 16);
    let mut g = rng(76);
    let (cos, sin) = rope_tables(d, 10000.0, &RopeScaling::Default, 40, &Device::Cpu).unwrap();
    let pos = ids(&[0, 39, 5, 5, 17, 2, 30, 1, 8, 22, 13], &[1, n]);
    for dt in HALF {
        let x = half(&randn(&mut g, n * h * d), &[1, n, h, d], dt);
        let (mut x32, mut xh) = (up(&x), x.copy().unwrap());
        ops::rope_fwd(&mut x32, &cos, &sin, &pos).unwrap();
        ops::rope_fwd(&mut xh, &cos, &sin, &pos).unwrap();
        assert_rounded_once("rope_fwd", &xh, &x32);
        // bwd from the rounded forward result, as the half path sees it
        let mut again = up(&xh);
        ops::rope_bwd(&mut again, &cos, &sin, &pos).unwrap();
        ops::rope_bwd(&mut xh, &cos, &sin, &pos).unwrap();
        assert_rounded_once("rope_bwd", &xh, &again);

        // 300 columns: several column blocks of at least 64
        let (v, c) = (20, 300);
        let id = ids(&[3, 19, 0, 3, 7, 7, 7, 12], &[8]);
        let dy = half(&randn(&mut g, 8 * c), &[8, c], dt);
        let base = randn(&mut g, v * c);
        let (mut want, mut got) = (t32(&base, &[v, c]), t32(&base, &[v, c]));
        ops::embedding_bwd(&mut want, &up(&dy), &id).unwrap();
        ops::embedding_bwd(&mut got, &dy, &id).unwrap();
        assert_eq!(bits(&got), bits(&want), "embedding_bwd ({dt:?})");
    }
}
