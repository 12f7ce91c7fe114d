//! One module per layer kind, each with its forward and hand-written backward side by side
//! (llm.c style). Functions read and write caller-owned buffers; nothing allocates per call.

pub mod attention;
pub mod block;
pub mod embedding;
pub mod linear;
pub mod lm_head;
pub mod mlp;
pub mod rmsnorm;
pub mod rope;
