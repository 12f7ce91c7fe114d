//! Op tests: each op against an f64 reference on odd sizes, each backward against central
//! finite differences of the f64 reference forward, and shape/dtype errors.

mod common;

mod attention;
mod elementwise;
mod half_paths;
mod loss;
mod matmul;
mod nn;
mod optim;
mod sample;
mod tensor;
