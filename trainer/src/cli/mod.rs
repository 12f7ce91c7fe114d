pub mod info;
pub mod reward;
pub mod data;
pub mod mine;
