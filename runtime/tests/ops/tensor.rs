use crate::common::*;
use runtime::{ops, DType, Device, Error, Tensor};

#[test]
fn views_share_storage_and_writes_need_unique_storage() {
    let t = t32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2]);
    let v = t.narrow(1, 2).unwrap();
    assert_eq!(v.shape(), &[2, 2]);
    assert_eq!(v.as_slice::<f32>().unwrap(), &[2.0, 3.0, 4.0, 5.0]);
    let r = v.reshape(&[4]).unwrap();
    assert_eq!(r.to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0, 5.0]);
    let mut w = t.clone();
    assert!(matches!(
        w.as_mut_slice::<f32>(),
        Err(Error::SharedStorage { .. })
    ));
    let mut out = t.clone();
    let err = ops::scale(&mut out, &t, 2.0).unwrap_err();
    assert!(matches!(err, Error::SharedStorage { .. }), "{err}");
    drop((v, r, w, out));
    let mut t = t;
    t.as_mut_slice::<f32>().unwrap()[0] = 7.0;
    assert_eq!(t.to_f32_vec().unwrap()[0], 7.0);
    assert!(t.narrow(2, 2).is_err());
    assert!(t.reshape(&[5]).is_err());
    assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
}

#[test]
fn casts_round_trip_between_all_dtypes() {
    let mut g = rng(1);
    let v = randn(&mut g, 127);
    let t = t32(&v, &[127]);
    let b = t.cast(DType::BF16).unwrap();
    assert_eq!(b.dtype(), DType::BF16);
    assert_close("f32->bf16", &f64s(&b), &round_bf16(&v), 0.0);
    let h = b.cast(DType::F16).unwrap();
    let back = h.cast(DType::F32).unwrap();
    assert_close("bf16->f16->f32", &f64s(&back), &round_bf16(&v), 1e-3);
    let hi = t32(&[3.7, -2.2, 1e6], &[3]).cast(DType::I64).unwrap();
    assert_eq!(hi.to_vec::<i64>().unwrap(), vec![3, -2, 1_000_000]);
    let i = ids(&[5, -9], &[2]).cast(DType::I32).unwrap();
    assert_eq!(i.as_slice::<i32>().unwrap(), &[5, -9]);
    assert_eq!(
        i.cast(DType::F32).unwrap().to_f32_vec().unwrap(),
        vec![5.0, -9.0]
    );
    assert!(b.as_slice::<f32>().is_err());
    assert!(Tensor::full(&[2], 1.5, DType::F16, &Device::Cpu)
        .unwrap()
        .to_scalar()
        .is_err());
    assert_eq!(
        Tensor::full(&[1], 1.5, DType::F16, &Device::Cpu)
            .unwrap()
            .to_scalar()
            .unwrap(),
        1.5
    );
}

#[test]
fn f32_to_bf16_rounding_matches_half_on_edge_cases() {
    let mut v: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        3.0e38,
        -3.0e38,
    ];
    // exact ties (round to even both ways), just above/below ties, and large exponent ranges
    for base in [
        0x3F80_0000u32,
        0x3F81_0000,
        0x7F7F_0000,
        0x0080_0000,
        0xBF80_0000,
    ] {
        for low in [0x7FFFu32, 0x8000, 0x8001, 0xFFFF, 0x0001] {
            v.push(f32::from_bits(base | low));
        }
    }
    let mut g = rng(7);
    v.extend((0..1000).map(|_| f32::from_bits(g.next_u64() as u32)));
    let t = Tensor::from_slice(&v, &[v.len()])
        .unwrap()
        .cast(DType::BF16)
        .unwrap();
    let got = t.as_slice::<runtime::bf16>().unwrap();
    for (x, b) in v.iter().zip(got) {
        let want = runtime::bf16::from_f32(*x);
        assert_eq!(
            b.to_bits(),
            want.to_bits(),
            "bf16 of {x:e} ({:#x})",
            x.to_bits()
        );
    }
}

#[test]
fn copy_rows_and_kv_cache_write() {
    let mut dst = zeros(&[4, 3]);
    let src = t32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    ops::copy_rows(&mut dst, 1, &src).unwrap();
    assert_eq!(
        dst.to_f32_vec().unwrap(),
        vec![0., 0., 0., 1., 2., 3., 4., 5., 6., 0., 0., 0.]
    );
    assert_err_names(
        ops::copy_rows(&mut dst, 3, &src).unwrap_err(),
        &["copy_rows", "[2, 3]", "[4, 3]"],
    );

    // cache [B=2, S=4, Hkv=1, D=2], write T=2 rows at starts [1, 2].
    let mut cache = zeros(&[2, 4, 1, 2]);
    let new = t32(&[1., 2., 3., 4., 5., 6., 7., 8.], &[2, 2, 1, 2]);
    ops::kv_cache_write(&mut cache, &new, &ids(&[1, 2], &[2])).unwrap();
    assert_eq!(
        cache.to_f32_vec().unwrap(),
        vec![0., 0., 1., 2., 3., 4., 0., 0., 0., 0., 0., 0., 5., 6., 7., 8.]
    );
    assert_err_names(
        ops::kv_cache_write(&mut cache, &new, &ids(&[3, 0], &[2])).unwrap_err(),
        &["kv_cache_write", "sequence 0"],
    );
}
