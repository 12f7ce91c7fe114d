//! `kernels::context::report`: one line saying why CUDA is unavailable, or the versions and one
//! line per device. Runs everywhere (no GPU needed for the first branch).
#![cfg(feature = "cuda")]

#[test]
fn report_says_why_in_one_line_or_lists_devices() {
    let lines = kernels::context::report();
    match kernels::context::unavailable_reason() {
        Some(why) => {
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(
                lines[0].starts_with("cuda: unavailable: ") && lines[0].contains(&why),
                "{lines:?}"
            );
            let e = kernels::Gpu::new(0)
                .err()
                .expect("no device, no Gpu")
                .to_string();
            assert!(e.contains(&why), "{e}");
        }
        None => {
            assert!(lines[0].starts_with("cuda: driver "), "{lines:?}");
            assert!(
                lines.len() >= 2 && lines[1].starts_with("cuda:0 "),
                "{lines:?}"
            );
        }
    }
}
