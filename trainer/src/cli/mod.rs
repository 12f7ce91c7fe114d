pub mod info;
pub mod reward;
pub mod data;
pub mod mine;
pub mod generate;
pub mod logprobs;
pub mod bench;
