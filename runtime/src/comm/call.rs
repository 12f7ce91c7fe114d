//! The collective a rank asked for, as every communicator checks it: all ranks of a round must
//! agree on the call and its sizes.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    AllReduce { numel: usize },
    AllGather { numel: usize },
    ReduceScatter { numel: usize },
    Broadcast { numel: usize, root: usize },
    Barrier,
}

impl Call {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Call::AllReduce { .. } => "all_reduce_sum",
            Call::AllGather { .. } => "all_gather",
            Call::ReduceScatter { .. } => "reduce_scatter_sum",
            Call::Broadcast { .. } => "broadcast",
            Call::Barrier => "barrier",
        }
    }
}
