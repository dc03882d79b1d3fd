//! Publishing to the Atlas aggregator (placeholder until the publisher lands).

/// Per-registry publishing state (pending batches, self-metrics).
#[derive(Default, Debug)]
pub(crate) struct PublishState {}
