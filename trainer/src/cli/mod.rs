pub mod info;
pub mod reward;
